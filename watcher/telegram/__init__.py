"""Telegram adapter: message formatting (pure) and sending through python-telegram-bot."""
