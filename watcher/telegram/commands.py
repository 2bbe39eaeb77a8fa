"""PURE: what the subscriber bot understands and what it says, without python-telegram-bot.

Arguments of /mute and /digest are parsed here, rule names are matched, callback data of the
/rules buttons is encoded and decoded, and every reply is rendered as Telegram HTML with each
user- or config-provided string escaped. `watcher.telegram.bot` wires these to PTB handlers.

Decisions worth knowing:

* `/mute` alone mutes for one hour; durations are `30m`, `2h`, `1d` or combined (`1h30m`),
  from one minute up to 30 days (to stop alerts for good, unfollow or `/digest daily`).
* A /rules button names its rule by a short hash of the name, not by its position: a config
  reload that adds or reorders rules leaves old buttons pointing at the same rule, and a
  button whose rule was removed is recognised as stale. Buttons say what they will do
  (follow or unfollow), so pressing an out-of-date keyboard never does the opposite.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from watcher.model import RuleDef, Subscriber
from watcher.telegram.format import MESSAGE_LIMIT, escape, visible_length

RULES_PER_PAGE = 8
DEFAULT_MUTE = timedelta(hours=1)
MAX_MUTE = timedelta(days=30)
SHOWN_NAME_LIMIT = 80  # rule names in message text
BUTTON_NAME_LIMIT = 40  # rule names on buttons
SHOWN_QUERY_LIMIT = 160
TOAST_LIMIT = 200  # what Telegram accepts in answerCallbackQuery
_ARGUMENT_LIMIT = 60  # how much of a user's argument is echoed back
_RULE_KEY_HEX = 16  # 64 bits of sha256: collisions between a few hundred names are negligible

_DURATION_PART = re.compile(r"(\d{1,6})(mins|min|m|hrs|hr|h|days|day|d)", re.IGNORECASE)
_UNIT = {"m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600}
_CLOCK = re.compile(r"([0-9]{1,2})[:.h]([0-9]{2})")  # \d takes "٣٠", which no clock shows


SORRY = "Sorry, something went wrong on my side. Please try again later."


class Invalid(ValueError):
    """A command's argument is wrong; `message` is plain text for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def names_left_out(count: int, limit: int) -> str:
    return (
        f"Only the first {limit} names are taken at once; "
        f"send the other {count} in another message."
    )


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- arguments


def parse_mute(args: Sequence[str]) -> timedelta:
    """`/mute` arguments → how long: none is `DEFAULT_MUTE`; "2h", "30m", "1d", "1h30m"."""
    text = "".join(args).strip()
    if not text:
        return DEFAULT_MUTE
    position, seconds = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        unit = match[2].lower()
        seconds += int(match[1]) * _UNIT.get(unit, 86400)
        position = match.end()
    if position != len(text) or position == 0:
        raise Invalid(
            f"I can't read “{shorten(text, _ARGUMENT_LIMIT)}” as a duration. "
            "Try /mute 30m, /mute 2h or /mute 1d."
        )
    duration = timedelta(seconds=seconds)
    if duration < timedelta(minutes=1):
        raise Invalid("Mute for at least a minute, e.g. /mute 30m.")
    if duration > MAX_MUTE:
        raise Invalid(
            "The longest mute is 30 days. To stop alerts for good, unfollow rules "
            "(/unsubscribe NAME) or switch to /digest daily 08:00."
        )
    return duration


def parse_clock(text: str) -> str:
    """ "8:00", "08:00", "20.30" → "HH:MM" on the 24-hour clock."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise Invalid(
            f"“{shorten(text, _ARGUMENT_LIMIT)}” is not a time of day; "
            "write it as HH:MM on the 24-hour clock, e.g. 08:00 or 19:30."
        )
    return f"{int(match[1]):02d}:{match[2]}"


@dataclass(frozen=True, slots=True)
class DigestChoice:
    mode: str  # "off" | "hourly" | "daily"
    at: str | None = None  # "HH:MM" for "daily"


def parse_digest(args: Sequence[str], zone: str) -> DigestChoice:
    """`/digest off`, `/digest hourly`, `/digest daily HH:MM`."""
    usage = (
        "Use /digest off, /digest hourly or /digest daily HH:MM "
        f"(24-hour clock, {zone} time), e.g. /digest daily 08:00."
    )
    if not args:
        raise Invalid(usage)
    mode = args[0].lower()
    if mode in ("off", "hourly") and len(args) == 1:
        return DigestChoice(mode)
    if mode == "daily" and len(args) == 2:
        try:
            return DigestChoice("daily", parse_clock(args[1]))
        except Invalid as exc:
            raise Invalid(f"{exc.message} Times are in {zone} time.") from None
    if mode == "daily" and len(args) == 1:
        raise Invalid(f"At what time? E.g. /digest daily 08:00 ({zone} time).")
    raise Invalid(usage)


# --------------------------------------------------------------------------- rules


def find_rule(name: str, rules: Sequence[RuleDef]) -> RuleDef | None:
    """The rule called `name`, ignoring case (config keeps names unique ignoring case)."""
    for rule in rules:
        if rule.name == name:
            return rule
    folded = name.casefold()
    return next((rule for rule in rules if rule.name.casefold() == folded), None)


def suggest_rule(name: str, rules: Sequence[RuleDef]) -> str | None:
    folded = {rule.name.casefold(): rule.name for rule in rules}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def rule_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_RULE_KEY_HEX]


def rule_by_key(key: str, rules: Sequence[RuleDef]) -> RuleDef | None:
    return next((rule for rule in rules if rule_key(rule.name) == key), None)


# --------------------------------------------------------------------------- callback data


@dataclass(frozen=True, slots=True)
class Toggle:
    """A rule button: follow (or unfollow) the rule with this key, shown on `page`."""

    follow: bool
    page: int
    key: str


@dataclass(frozen=True, slots=True)
class ShowPage:
    page: int


Button = Toggle | ShowPage


def encode_button(button: Button) -> str:
    """At most 64 bytes, as Telegram requires: "f:3:<16 hex>" at most 24."""
    if isinstance(button, ShowPage):
        return f"p:{button.page}"
    return f"{'f' if button.follow else 'u'}:{button.page}:{button.key}"


def decode_button(data: str) -> Button | None:
    """None for data this version of the bot did not write."""
    parts = data.split(":")
    if not parts or not all(part.isascii() for part in parts):
        return None
    if parts[0] == "p" and len(parts) == 2 and parts[1].isdigit():
        return ShowPage(int(parts[1]))
    if (
        parts[0] in ("f", "u")
        and len(parts) == 3
        and parts[1].isdigit()
        and re.fullmatch(f"[0-9a-f]{{{_RULE_KEY_HEX}}}", parts[2])
    ):
        return Toggle(parts[0] == "f", int(parts[1]), parts[2])
    return None


# --------------------------------------------------------------------------- times


def zone_name(zone: tzinfo, now: datetime) -> str:
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else (zone.tzname(now) or "UTC")


def show_moment(moment: datetime, zone: tzinfo, now: datetime) -> str:
    """ "16:00 (Asia/Baku)" today, "2026-11-29 16:00 (Asia/Baku)" another day."""
    local, today = moment.astimezone(zone), now.astimezone(zone)
    shown = local.strftime("%H:%M" if local.date() == today.date() else "%Y-%m-%d %H:%M")
    return f"{shown} ({zone_name(zone, now)})"


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Page:
    """One /rules message: its HTML, its text as Telegram shows it (to tell whether an edit
    changes it), and its keyboard as rows of (label, callback data)."""

    html: str
    visible: str
    keyboard: tuple[tuple[tuple[str, str], ...], ...]
    page: int


def page_count(rules: Sequence[RuleDef]) -> int:
    return max(1, -(-len(rules) // RULES_PER_PAGE))


def render_rules_page(rules: Sequence[RuleDef], followed: Iterable[str], page: int) -> Page:
    """A page of at most `RULES_PER_PAGE` rules (clamped to the pages there are), each with
    its query and one button; Back/Next buttons when there is more than one page."""
    if not rules:
        text = "No rules are configured yet."
        return Page(escape(text), text, (), 0)
    pages = page_count(rules)
    page = min(max(page, 0), pages - 1)
    following = set(followed)
    shown = rules[page * RULES_PER_PAGE : (page + 1) * RULES_PER_PAGE]
    head = "Rules" + (f" (page {page + 1} of {pages})" if pages > 1 else "")
    hint = "Tap a rule to follow it (➕) or to stop following it (✅)."
    html = [f"<b>{head}</b>\n{hint}"]
    visible = [f"{head}\n{hint}"]
    rows: list[tuple[tuple[str, str], ...]] = []
    for rule in shown:
        name = shorten(rule.name, SHOWN_NAME_LIMIT)
        query = shorten(rule.query, SHOWN_QUERY_LIMIT)
        # The text does not say what the chat follows, only the buttons do: a tap then
        # edits the keyboard alone.
        html.append(f"\n\n<b>{escape(name)}</b>\n<i>{escape(query)}</i>")
        visible.append(f"\n\n{name}\n{query}")
        mark = "✅" if rule.name in following else "➕"
        label = f"{mark} {shorten(rule.name, BUTTON_NAME_LIMIT)}"
        toggle = Toggle(rule.name not in following, page, rule_key(rule.name))
        rows.append(((label, encode_button(toggle)),))
    navigation: list[tuple[str, str]] = []
    if page > 0:
        navigation.append(("◀ Back", encode_button(ShowPage(page - 1))))
    if page < pages - 1:
        navigation.append(("Next ▶", encode_button(ShowPage(page + 1))))
    if navigation:
        rows.append(tuple(navigation))
    return Page("".join(html), "".join(visible).strip(), tuple(rows), page)


def split_html(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Plain text → escaped HTML messages within `limit`, cut at line ends (a line longer
    than a message is shortened)."""
    messages: list[str] = []
    current: list[str] = []
    used = 0
    for line in text.splitlines() or [""]:
        piece = escape(shorten(line, limit // 8) if visible_length(line) > limit // 8 else line)
        # The escaped length bounds the visible length: entities only shrink when parsed.
        size = visible_length(piece) + 1
        if current and used + size > limit:
            messages.append("\n".join(current))
            current, used = [], 0
        current.append(piece)
        used += size
    if current:
        messages.append("\n".join(current))
    return [message for message in messages if message.strip()] or [escape("(empty)")]


def command_list(admin: bool) -> str:
    lines = [
        "<b>What I understand</b>",
        "/rules — the rules, with buttons to follow or unfollow them",
        "/subscribe NAME — follow a rule",
        "/unsubscribe NAME — stop following a rule",
        "/list — what you follow, and your mute and digest settings",
        "/mute 2h — hold alerts for a while (30m, 2h, 1d; /mute alone: 1 hour)",
        "/unmute — alerts as they come again",
        "/digest off | hourly | daily HH:MM — alerts as they come, or collected",
        "/help — this list",
    ]
    if admin:
        lines += [
            "",
            "<b>For operators</b>",
            "/status — feed health",
            "/stats — subscribers, alerts and deliveries",
        ]
    return "\n".join(lines)


def welcome(new: bool, admin: bool) -> str:
    greeting = "👋 <b>Welcome to Watcher.</b>" if new else "👋 <b>Welcome back.</b>"
    return (
        f"{greeting}\n\n"
        "I watch the region's news feeds and message you as soon as a story matches a rule "
        "you follow.\n\n"
        "1. Send /rules and tap the rules you want to follow.\n"
        "2. Alerts arrive here as the stories appear.\n"
        "3. Want quiet? /mute 2h, or one message a day: /digest daily 08:00.\n\n"
        + command_list(admin)
    )


def private_bot(chat_id: int) -> str:
    return (
        "🔒 Sorry, this bot is private. Ask its operator to add this chat's id, "
        f"<code>{chat_id}</code>, to the allow list."
    )


def operators_only(command: str) -> str:
    return f"Sorry, /{escape(command)} is only for the bot's operators."


GROUP_ADMINS_ONLY = "Only this group's administrators can change what it follows."
GROUP_ADMINS_UNKNOWN = (
    "I could not check with Telegram that you administer this group; please try again later."
)


def unknown_command(command: str, admin: bool) -> str:
    return f"I don't know /{escape(shorten(command, _ARGUMENT_LIMIT))}.\n\n" + command_list(admin)


def unknown_rule(name: str, rules: Sequence[RuleDef]) -> str:
    line = f"There is no rule named <b>{escape(shorten(name, _ARGUMENT_LIMIT))}</b>."
    suggestion = suggest_rule(name, rules)
    if suggestion is not None:
        line += f" Did you mean <b>{escape(shorten(suggestion, SHOWN_NAME_LIMIT))}</b>?"
    return line


def see_rules() -> str:
    return "Send /rules to see them all, with buttons."


def name_wanted(command: str) -> str:
    return f"Which rule? E.g. /{command} NAME. {see_rules()}"


def digest_state(subscriber: Subscriber | None, zone: str) -> str:
    if subscriber is None or subscriber.digest == "off":
        return "Alerts come as they happen."
    if subscriber.digest == "hourly":
        return "Alerts are collected into an hourly digest."
    at = subscriber.digest_time or "?"
    return f"Alerts are collected into a daily digest at {at} ({zone})."


def mute_state(subscriber: Subscriber | None, zone: tzinfo, now: datetime) -> str | None:
    if subscriber is None or subscriber.muted_until is None or subscriber.muted_until <= now:
        return None
    return f"🔕 Muted until {show_moment(subscriber.muted_until, zone, now)}."


def followed_list(
    subscriber: Subscriber | None, rules: Sequence[RuleDef], zone: tzinfo, now: datetime
) -> str:
    """/list: the rules the chat follows (marking those no longer configured), then the mute
    and digest state."""
    configured = {rule.name for rule in rules}
    followed = subscriber.rules if subscriber is not None else ()
    lines: list[str] = []
    if followed:
        count = f"{len(followed)} rule" + ("" if len(followed) == 1 else "s")
        lines.append(f"<b>You follow {count}:</b>")
        for name in sorted(followed, key=str.casefold):
            gone = "" if name in configured else " <i>(no longer configured)</i>"
            lines.append(f"• {escape(shorten(name, SHOWN_NAME_LIMIT))}{gone}")
    else:
        lines.append(f"You follow no rules yet. {see_rules()}")
    lines.append("")
    if subscriber is not None and not subscriber.active:
        # It blocked the bot once: nothing is sent to it until it says /start again.
        lines.append(
            "No alerts are sent to this chat: it had blocked me. Send /start to turn them on."
        )
        return fit("\n".join(lines))
    muted = mute_state(subscriber, zone, now)
    if muted is not None:
        lines.append(escape(muted))
    lines.append(escape(digest_state(subscriber, zone_name(zone, now))))
    return fit("\n".join(lines))


def fit(html: str) -> str:
    """Cut an over-long reply at a line end (a list of followed rules, of unknown names):
    Telegram refuses more than MESSAGE_LIMIT. Markup counts too, which errs on the safe
    side."""
    if visible_length(html) <= MESSAGE_LIMIT:
        return html
    kept: list[str] = []
    used = 0
    for line in html.split("\n"):
        if used + visible_length(line) + 1 > MESSAGE_LIMIT - 10:
            break
        kept.append(line)
        used += visible_length(line) + 1
    return "\n".join([*kept, "…"])


def toast(text: str) -> str:
    return shorten(text, TOAST_LIMIT)
