"""Watcher: a news-alerting daemon for regional feeds."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/watcher-news/watcher"
