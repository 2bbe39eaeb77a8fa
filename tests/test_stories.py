"""watcher.stories: signatures, similarity, and the story index's decisions."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.stories import Signature, StoryIndex, StorySettings, signature

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent

# Unrelated entries of a day, so that words every entry has ("the", "и", "və") weigh little,
# as they do in the daemon's index of the window.
BACKGROUND = [
    (
        "Georgia's parliament passes budget for next year",
        "Lawmakers approved the state budget in the third reading on Friday.",
    ),
    (
        "Armenian dram strengthens against the dollar",
        "The central bank said the currency gained 2% in a week.",
    ),
    (
        "Wildfire in Borjomi park contained",
        "Firefighters and the army brought the fire under control after three days.",
    ),
    (
        "В Тбилиси открылась выставка грузинского авангарда",
        "В Национальной галерее представлено более ста работ художников начала века.",
    ),
    (
        "Курс рубля к доллару снизился на торгах Мосбиржи",
        "Доллар подорожал на 40 копеек по итогам дня, сообщили на бирже.",
    ),
    (
        "В Ереване прошёл марафон, в котором участвовали 5 тысяч человек",
        "Забег прошёл по центральным улицам города и завершился на площади Республики.",
    ),
    (
        "Bakıda yeni metro stansiyası açılıb",
        "Stansiya gündə 40 min sərnişinə xidmət göstərəcək, Bakı Metropoliteni bildirib.",
    ),
    (
        "Azərbaycanda pambıq yığımı başlayıb",
        (
            "Bu il 100 min hektar sahədən məhsul yığılması gözlənilir, Kənd Təsərrüfatı Nazirliyi"
            " bildirib."
        ),
    ),
    (
        "Qəbələdə beynəlxalq musiqi festivalı keçirilir",
        "Festivalda 15 ölkədən musiqiçilər çıxış edəcəklər.",
    ),
]


def fresh_index(settings_: StorySettings | None = None) -> StoryIndex:
    index = StoryIndex(settings_)
    for number, (title, summary) in enumerate(BACKGROUND, start=1000):
        index.restore(
            number,
            f"background{number}",
            T0 - timedelta(hours=3),
            signature(title, summary),
            number,
        )
    return index


# (title A, summary A, title B, summary B): two outlets' reports of one event, in other words.
SAME = [
    (
        "Russian peacekeepers complete withdrawal from Khankendi",
        (
            "The last column of the Russian peacekeeping contingent left its base in Khankendi, "
            "the Defence Ministry said."
        ),
        "Last Russian peacekeepers leave Khankendi base",
        (
            "The final convoy of the Russian contingent departed from Khankendi on Wednesday, "
            "ending the mission."
        ),
    ),
    (
        "Aliyev and Pashinyan meet in Abu Dhabi, initial peace treaty",
        (
            "The leaders of Azerbaijan and Armenia initialled the text of the peace agreement "
            "after talks in the UAE."
        ),
        "Pashinyan, Aliyev initial draft peace deal at Abu Dhabi talks",
        (
            "Armenian Prime Minister Nikol Pashinyan and President Ilham Aliyev initialled the "
            "agreed treaty text in Abu Dhabi."
        ),
    ),
    (
        "Российские миротворцы покинули Ханкенди",
        (
            "Последняя колонна российского миротворческого контингента покинула базу в Ханкенди, "
            "сообщило Минобороны."
        ),
        "Вывод российских миротворцев из Ханкенди завершён",
        (
            "Последние подразделения миротворческого контингента покинули Ханкенди, сообщили в "
            "Минобороны Азербайджана."
        ),
    ),
    (
        "Землетрясение магнитудой 5,1 произошло в Шамахы",
        "Подземные толчки зафиксированы ночью, эпицентр находился на глубине 10 км, жертв нет.",
        "В Шамахинском районе произошло землетрясение магнитудой 5,1",
        "Толчки ощущались и в Баку; о жертвах и разрушениях не сообщается, заявили в МЧС.",
    ),
    (
        "Prezident İlham Əliyev Vladimir Putinlə telefonla danışıb",
        (
            "Azərbaycan Prezidenti İlham Əliyev Rusiya Prezidenti Vladimir Putinlə telefon "
            "danışığı aparıb, Şimal-Cənub dəhlizini müzakirə ediblər."
        ),
        "İlham Əliyev və Vladimir Putin telefonla danışıb",
        (
            "Dövlət başçıları telefon danışığında Şimal-Cənub nəqliyyat dəhlizi üzrə əməkdaşlığı "
            "müzakirə ediblər."
        ),
    ),
    (
        "Şamaxıda 5,1 bal gücündə zəlzələ olub",
        (
            "Respublika Seysmoloji Xidmət Mərkəzinin məlumatına görə, zəlzələ gecə baş verib, "
            "ocağı 10 km dərinlikdə olub."
        ),
        "Şamaxı rayonunda 5,1 bal gücündə zəlzələ qeydə alınıb",
        "Zəlzələ Bakıda da hiss olunub, Fövqəladə Hallar Nazirliyi tələfat olmadığını bildirib.",
    ),
]

# Reports of two events, and how many hours apart: never one story. Events that share actors or
# places are told apart by the time between them (lexically, a Putin-Aliyev call and a
# Putin-Pashinyan call the same day look like one story: bench/stories.py measures how often).
DIFFERENT = [
    (
        "Russian peacekeepers complete withdrawal from Khankendi",
        (
            "The last column of the Russian peacekeeping contingent left its base in Khankendi, "
            "the Defence Ministry said."
        ),
        "Armenia ratifies Rome Statute of the International Criminal Court",
        (
            "The National Assembly voted 60 to 22 to join the court, which has issued an arrest "
            "warrant for Vladimir Putin."
        ),
        2,
    ),
    (
        "Putin and Aliyev discuss transport corridor by phone",
        (
            "The presidents of Russia and Azerbaijan discussed the North-South corridor in a "
            "telephone conversation."
        ),
        "Georgian Dream wins parliamentary elections, preliminary results show",
        (
            "The ruling party received 54% of the vote with 99% of precincts counted, the Central"
            " Election Commission said."
        ),
        2,
    ),
    (
        "Российские миротворцы покинули Ханкенди",
        (
            "Последняя колонна российского миротворческого контингента покинула базу в Ханкенди, "
            "сообщило Минобороны."
        ),
        "Пашинян заявил о заморозке участия Армении в ОДКБ",
        (
            "Премьер-министр в интервью сказал, что Ереван фактически приостановил участие в "
            "организации."
        ),
        2,
    ),
    (
        "Землетрясение магнитудой 5,1 произошло в Шамахы",
        "Подземные толчки зафиксированы ночью, эпицентр находился на глубине 10 км, жертв нет.",
        "«Газпром» и SOCAR подписали меморандум о сотрудничестве",
        "Документ подписали на полях экономического форума в Санкт-Петербурге.",
        2,
    ),
    (
        "Prezident İlham Əliyev Vladimir Putinlə telefonla danışıb",
        (
            "Azərbaycan Prezidenti İlham Əliyev Rusiya Prezidenti Vladimir Putinlə telefon "
            "danışığı aparıb, Şimal-Cənub dəhlizini müzakirə ediblər."
        ),
        "Şamaxıda 5,1 bal gücündə zəlzələ olub",
        (
            "Respublika Seysmoloji Xidmət Mərkəzinin məlumatına görə, zəlzələ gecə baş verib, "
            "ocağı 10 km dərinlikdə olub."
        ),
        2,
    ),
    (
        "Russian peacekeepers complete withdrawal from Khankendi",
        (
            "The last column of the Russian peacekeeping contingent left its base in Khankendi, "
            "the Defence Ministry said."
        ),
        "Russian peacekeepers hand over two observation posts in Aghdam",
        (
            "Peacekeepers of the Russian contingent transferred posts near the villages of "
            "Khidirli and Sarijali to the Azerbaijani army, the ministry said."
        ),
        36,
    ),
    (
        "Землетрясение магнитудой 5,1 произошло в Шамахы",
        "Подземные толчки зафиксированы ночью, эпицентр находился на глубине 10 км, жертв нет.",
        "В Ширакской области Армении произошло землетрясение магнитудой 4,3",
        "Толчки ощущались в Гюмри, о пострадавших не сообщается, заявили в МЧС Армении.",
        24,
    ),
    (
        "Prezident İlham Əliyev Vladimir Putinlə telefonla danışıb",
        (
            "Azərbaycan Prezidenti İlham Əliyev Rusiya Prezidenti Vladimir Putinlə telefon "
            "danışığı aparıb, Şimal-Cənub dəhlizini müzakirə ediblər."
        ),
        "İlham Əliyev Nikol Paşinyanla Abu-Dabidə görüşüb",
        "Azərbaycan Prezidenti və Ermənistanın Baş naziri sülh sazişinin mətnini paraflayıblar.",
        24,
    ),
    (
        "Şamaxıda 5,1 bal gücündə zəlzələ olub",
        (
            "Respublika Seysmoloji Xidmət Mərkəzinin məlumatına görə, zəlzələ gecə baş verib, "
            "ocağı 10 km dərinlikdə olub."
        ),
        "Ermənistanın Şirak vilayətində 4,3 bal gücündə zəlzələ olub",
        "Zəlzələ Gümrüdə hiss olunub, xəsarət alan yoxdur.",
        24,
    ),
]


@pytest.mark.parametrize("case", SAME, ids=lambda case: case[0][:40])
def test_reports_of_one_event_from_two_feeds_are_one_story(case: tuple[str, ...]) -> None:
    index = fresh_index()
    assert index.add(1, "apa", T0, signature(case[0], case[1])) is None
    assert index.add(2, "trend", T0 + timedelta(hours=2), signature(case[2], case[3])) == 1
    assert index.story_of(2) == 1


@pytest.mark.parametrize("case", DIFFERENT, ids=lambda case: f"{case[2][:40]}, {case[4]} h")
def test_reports_of_different_events_are_different_stories(
    case: tuple[str, str, str, str, int],
) -> None:
    index = fresh_index()
    later = T0 + timedelta(hours=case[4])
    assert index.add(1, "apa", T0, signature(case[0], case[1])) is None
    assert index.add(2, "trend", later, signature(case[2], case[3])) is None
    assert index.story_of(2) == 2


def test_a_story_grows_with_each_new_outlet() -> None:
    index = fresh_index()
    first, second = SAME[0][:2], SAME[0][2:]
    assert index.add(1, "apa", T0, signature(*first)) is None
    assert index.add(2, "armenpress", T0 + timedelta(hours=1), signature(*second)) == 1
    assert index.add(3, "tass", T0 + timedelta(hours=2), signature(*first)) == 1
    assert index.stories()[1] == {1, 2, 3}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("ПУТИН ВСТРЕТИЛСЯ С АЛИЕВЫМ", ""), ("путин встретился с алиевым", "")),
        (
            ("Пётр Толстой о трёхстороннем заявлении", ""),
            ("Петр Толстой о трехстороннем заявлении", ""),
        ),
        (("İLHAM ƏLİYEV QƏBUL EDİB", ""), ("ilham əliyev qəbul edib", "")),
        (("Ilham Əliyev qəbul edib", ""), ("İlham Əliyev qəbul edib", "")),
        (("Sülhməramlılar Xankəndidən çıxıb", ""), ("SÜLHMƏRAMLILAR XANKƏNDİDƏN ÇIXIB", "")),
        (
            ("Putin &amp; Aliyev", "<p>The <b>presidents</b> met&nbsp;in&nbsp;Dushanbe.</p>"),
            ("Putin & Aliyev", "The presidents met in Dushanbe."),
        ),
        (("Peace\u00adkeepers leave Khan\u00adkendi", ""), ("Peacekeepers leave Khankendi", "")),
    ],
)
def test_folding_and_markup_make_no_difference(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert signature(*one) == signature(*other)
    assert fresh_index().similarity(signature(*one), signature(*other)) == 1.0


def test_inflected_forms_share_terms() -> None:
    assert signature("миротворцы", "").terms == signature("миротворцев", "").terms
    assert signature("Armenia", "").terms == signature("Armenian", "").terms


def test_only_the_lead_of_a_long_summary_counts() -> None:
    lead = " ".join(f"w{n}" for n in range(60))
    assert signature("title", lead) == signature("title", lead + " and many more words after it")


def test_an_entry_without_words_is_a_story_of_its_own() -> None:
    index = fresh_index()
    empty = signature("", " — ")
    assert empty == Signature(frozenset())
    assert index.similarity(empty, empty) == 0.0
    assert index.add(1, "apa", T0, empty) is None
    assert index.add(2, "trend", T0, empty) is None


@pytest.mark.parametrize(("hours", "joins"), [(-49, False), (-47, True), (47, True), (49, False)])
def test_entries_further_apart_than_the_window_never_join(hours: int, joins: bool) -> None:
    index = fresh_index()
    sig = signature(*SAME[0][:2])
    index.add(1, "apa", T0, sig)
    # Within the window the time apart costs, but the same text still joins.
    assert index.add(2, "trend", T0 + timedelta(hours=hours), sig) == (1 if joins else None)


@pytest.mark.parametrize("past", [timedelta(microseconds=500), timedelta(microseconds=999)])
def test_an_entry_a_hair_past_the_window_starts_a_story(past: timedelta) -> None:
    # The candidate search allows a millisecond for rounding; the story's only entry is
    # then out of the window, and its score was the mean of nothing (ZeroDivisionError, at
    # every poll of the feed).
    index = fresh_index()
    sig = signature(*SAME[0][:2])
    index.add(1, "apa", T0, sig)
    assert index.add(2, "trend", T0 + timedelta(hours=48) + past, sig) is None


def test_rare_terms_weigh_more_than_common_ones() -> None:
    index = fresh_index()
    assert index.weight("the") < index.weight("borj") < index.weight("lach")


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        StorySettings(window=timedelta(0))


def test_time_apart_lowers_the_score_up_to_the_penalty() -> None:
    rules = StorySettings(threshold=0.15, window=timedelta(hours=48), time_penalty=0.3)
    assert rules.score(0.5, timedelta(0)) == 0.5
    assert rules.score(0.5, timedelta(hours=24)) == pytest.approx(0.35)
    assert rules.score(0.5, -timedelta(hours=24)) == pytest.approx(0.35)
    assert rules.score(0.5, timedelta(hours=100)) == pytest.approx(0.2)


def test_a_weak_match_a_day_later_is_another_story() -> None:
    # The same two reports that join two hours apart (test above) do not a day later.
    index = fresh_index()
    case = SAME[5]
    index.add(1, "apa", T0, signature(case[0], case[1]))
    assert index.add(2, "trend", T0 + timedelta(hours=30), signature(case[2], case[3])) is None


def test_expire_forgets_old_entries_and_a_story_lives_while_it_has_one() -> None:
    index = StoryIndex()
    title, summary = SAME[0][:2]
    index.add(1, "apa", T0, signature(title, summary))
    index.add(2, "trend", T0 + timedelta(hours=10), signature(title, summary))
    assert index.expire(T0 + timedelta(hours=1)) == 1
    assert 1 not in index and 2 in index and len(index) == 1
    assert index.stories() == {1: frozenset({2})}
    # The story keeps its name, and takes an entry of the forgotten entry's feed again.
    assert index.add(3, "apa", T0 + timedelta(hours=11), signature(title, summary)) == 1
    assert index.expire(T0 + timedelta(hours=12)) == 2
    assert len(index) == 0 and index.stories() == {}
    assert index.add(4, "tass", T0 + timedelta(hours=13), signature(title, summary)) is None


def test_a_story_holds_one_entry_per_feed() -> None:
    index = fresh_index()
    sig = signature(*SAME[0][:2])
    index.add(1, "apa", T0, sig)
    # The same feed again: not this story, even word for word.
    assert index.add(2, "apa", T0, sig) is None
    # Another feed: both stories score alike, and ties go to the older story.
    assert index.add(3, "trend", T0, sig) == 1
    assert index.add(4, "trend", T0, sig) == 2
    assert index.add(5, "tass", T0, sig) == 1
    assert index.stories() == {1: {1, 3, 5}, 2: {2, 4}} | {
        number: {number} for number in range(1000, 1000 + len(BACKGROUND))
    }


def test_an_entry_is_added_once() -> None:
    index = fresh_index()
    index.add(1, "apa", T0, signature("a b c", ""))
    with pytest.raises(ValueError, match="already"):
        index.add(1, "apa", T0, signature("a b c", ""))
    with pytest.raises(ValueError, match="already"):
        index.restore(1, "apa", T0, signature("a b c", ""), 1)


def test_restored_entries_keep_their_stories_in_any_order() -> None:
    sequence = _random_sequence(seed=3, count=80)
    first = StoryIndex()
    for entry_id, feed, published, sig in sequence:
        first.add(entry_id, feed, published, sig)
    recorded = [(e, f, p, s, first.story_of(e)) for e, f, p, s in sequence]
    random.Random(4).shuffle(recorded)
    second = StoryIndex()
    for entry_id, feed, published, sig, story in recorded:
        second.restore(entry_id, feed, published, sig, story)
    assert second.stories() == first.stories()
    # And both decide the next entries alike.
    later = T0 + timedelta(hours=6)
    for entry_id, feed, _, sig in _random_sequence(seed=5, count=30, first_id=500):
        assert first.add(entry_id, feed, later, sig) == second.add(entry_id, feed, later, sig)


def _random_sequence(
    seed: int, count: int, first_id: int = 1
) -> list[tuple[int, str, datetime, Signature]]:
    """Entries of few words from a small vocabulary, so that many are alike; some open with
    an attribution ("Peskov: ...")."""
    rng = random.Random(seed)
    vocabulary = [f"w{n:02d}x" for n in range(40)] + ["the", "of", "in", "and"] * 5
    vocabulary += ["5", "12", "2026"]  # titles whose numbers differ score lower
    speakers = ["Peskov", "Maria Zakharova", "Hikmet Hajiyev", "w01x", "the w02x"]
    sequence = []
    for n in range(count):
        text = " ".join(rng.choices(vocabulary, k=rng.randint(2, 9)))
        if rng.random() < 0.3:
            text = f"{rng.choice(speakers)}: {text}"
        published = T0 + timedelta(minutes=rng.randint(0, 60 * 60))
        sequence.append((first_id + n, f"feed{rng.randrange(6)}", published, signature(text, "")))
    return sequence


def test_the_candidate_search_misses_no_story() -> None:
    """add() looks only at entries sharing a rare enough term; a search of every entry must
    find the same story (average score over the story's entries of the window)."""
    index = StoryIndex(StorySettings(threshold=0.3, window=timedelta(hours=20)))
    held: dict[int, tuple[str, datetime, Signature]] = {}
    story_of: dict[int, int] = {}
    joined = 0
    for entry_id, feed, published, sig in _random_sequence(seed=1, count=400):
        index.similarity(sig, sig)  # brings the weights up to date, as add() would
        scores: dict[int, list[float]] = {}
        for other, (_, other_published, other_sig) in held.items():
            apart = published - other_published
            if abs(apart) <= index.settings.window:
                score = index.settings.score(index.similarity(sig, other_sig), apart)
                scores.setdefault(story_of[other], []).append(score)
        feeds = {}
        for other, story in story_of.items():
            feeds.setdefault(story, set()).add(held[other][0])
        eligible = [
            (sum(values) / len(values), -story)
            for story, values in scores.items()
            if feed not in feeds[story] and sum(values) / len(values) >= index.settings.threshold
        ]
        expected = -max(eligible)[1] if eligible else None
        assert index.add(entry_id, feed, published, sig) == expected
        joined += expected is not None
        held[entry_id] = (feed, published, sig)
        story_of[entry_id] = entry_id if expected is None else expected
    assert joined > 40  # the case is not vacuous


_DECIDE = """
import json, random, sys
from datetime import UTC, datetime, timedelta
from watcher.stories import StoryIndex, signature
rng = random.Random(7)
words = ["Aliyev", "Putin", "peacekeepers", "Khankendi", "Lachin", "border", "gas", "talks",
         "Пашинян", "миротворцы", "Ханкенди", "ОДКБ", "sülhməramlılar", "Əliyev", "the", "in"]
index = StoryIndex()
decisions = []
for n in range(300):
    title = " ".join(rng.choices(words, k=rng.randint(2, 6)))
    when = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(minutes=n * 7)
    decisions.append(index.add(n, "feed%d" % rng.randrange(5), when, signature(title, "")))
print(json.dumps(decisions))
"""


def test_decisions_do_not_depend_on_hash_randomisation() -> None:
    runs = []
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _DECIDE],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=environment,
        )
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    assert any(decision is not None for decision in runs[0])


_TEXT = st.text(
    alphabet=st.sampled_from("abcdeİıIiƏəÖöЁёЖжПпр աբգ 0123456789 ,.:-<>&;\u00ad\u00a0"),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(title=_TEXT, summary=_TEXT, other_title=_TEXT, other_summary=_TEXT)
def test_similarity_is_reflexive_symmetric_and_bounded(
    title: str, summary: str, other_title: str, other_summary: str
) -> None:
    index = fresh_index()
    one, other = signature(title, summary), signature(other_title, other_summary)
    index.restore(1, "apa", T0, other, 1)
    if one.terms:
        assert index.similarity(one, one) == 1.0
        assert index.similarity(one, signature(title, summary)) == 1.0
    assert index.similarity(one, other) == index.similarity(other, one)
    assert -index.settings.number_penalty <= index.similarity(one, other) <= 1.0
    # And an entry's twin in another feed joins its story.
    if one.terms:
        twins = fresh_index()
        twins.add(1, "apa", T0, one)
        assert twins.add(2, "trend", T0, signature(title, summary)) == twins.story_of(1)


@pytest.mark.parametrize(
    ("title", "numbers"),
    [
        ("5.1-magnitude earthquake", {"5.1"}),
        ("Землетрясение магнитудой 5,1", {"5.1"}),
        ("5 000-ლარიანი გირაო", {"5000"}),
        ("5000-ლარიანი გირაო", {"5000"}),
        ("$5,000 fine, 1,250,000 people", {"5000", "1250000"}),
        ("Tremor at 03:14, 100-მდე hurt", {"3", "14", "100"}),
        ("G20 summit: Su-35 and 5th round", {"35", "5"}),
        ("No numbers here", set()),
    ],
)
def test_a_title_s_numbers_are_written_alike(title: str, numbers: set[str]) -> None:
    assert signature(title, "1 2 3 in the summary").numbers == numbers


def test_titles_whose_numbers_differ_are_two_events() -> None:
    quake = signature(
        "5.1-magnitude earthquake strikes Shamakhi",
        "An earthquake of magnitude 5.1 was recorded in the Shamakhi district at 03:14 local "
        "time, the seismic survey said.",
    )
    aftershock = signature(
        "Aftershock of magnitude 3.2 rattles Shamakhi",
        "Seismologists registered another tremor on Monday, a day after the main shock.",
    )
    index = fresh_index()
    words_alone = index.similarity(Signature(quake.terms), Signature(aftershock.terms))
    assert words_alone >= index.settings.threshold  # the words alone would make one story
    assert index.similarity(quake, aftershock) == words_alone - index.settings.number_penalty
    assert index.add(1, "apa", T0, quake) is None
    assert index.add(2, "report", T0 + timedelta(minutes=30), aftershock) is None
    # A report whose title has the same number, or none, joins.
    same = signature("Shamakhi earthquake: magnitude 5,1", "The seismic survey said.")
    assert index.add(3, "trend", T0 + timedelta(hours=1), same) == 1
    assert index.add(4, "tass", T0 + timedelta(hours=1), Signature(quake.terms)) == 1


def test_the_words_a_rule_matched_are_no_evidence_of_one_story() -> None:
    """Two headlines of different events that share only the rule's words: one story if
    those words count, two if they are set aside as the daemon does."""
    apa = ("Russian peacekeepers leave & 5 < 6 now", "")
    turan = ("Russian peacekeeping contingent rotates", "")
    index = StoryIndex()
    index.add(1, "apa", T0, signature(*apa, ignore=["Russian peacekeepers"]))
    assert index.add(2, "turan", T0, signature(*turan, ignore=["Russian peacekeeping"])) is None

    counted = StoryIndex()
    counted.add(1, "apa", T0, signature(*apa))
    assert counted.add(2, "turan", T0, signature(*turan)) == 1


def test_ignored_words_are_folded_like_the_text() -> None:
    full = signature("İLHAM ƏLİYEV met Pashinyan in Brussels", "")
    without = signature("İLHAM ƏLİYEV met Pashinyan in Brussels", "", ignore=["Ilham Əliyev"])
    assert full.terms - without.terms == {"ilha", "əliy"}


def test_place_returns_the_story_and_keeps_the_index_to_one_window() -> None:
    index = StoryIndex()
    quake = ("Earthquake of magnitude 5.1 hits Shamakhi", "Tremors felt in Baku and Ismayilli")
    same = ("Magnitude 5.1 earthquake strikes Shamakhi", "Tremors were felt in Baku")
    assert index.place(1, "apa", T0, *quake) == 1
    assert index.place(2, "trend", T0 + timedelta(hours=1), *same) == 1
    # Three days on, both are forgotten: the same words start a new story.
    assert index.place(3, "report", T0 + timedelta(days=3), *same) == 3
    assert len(index) == 1


@pytest.mark.parametrize(
    ("title", "attribution"),
    [
        ("Peskov: Kremlin will ask Yerevan to explain", {"pesk"}),
        ("ლევან მახაშვილი: ტრამპის წერილის შემდეგ", {"ლევა", "მახა"}),
        ("  CEC : Georgian Dream leads", {"cec"}),
        ("Live updates: Karabakh", {"live", "upda"}),
        ("<b>Песков</b>: Кремль свяжется с Ереваном", {"песк"}),
        ("«Мария Захарова»: Москва ждёт разъяснений", {"мари", "заха"}),
        # Not an attribution: a time, a colon deeper in the title, one with no space after it,
        # an opening of three words or more (as often what happened as who said it).
        ("Tremor at 03:14 felt in Baku", set()),
        ("Aliyev and Putin met in Dushanbe and said: talks went well", set()),
        ("Note:no space", set()),
        ("Землетрясение в Шамахы: закрыты школы", set()),
        ("Russian Defence Ministry: peacekeepers leave", set()),
        ("No colon at all", set()),
    ],
)
def test_a_title_s_attribution(title: str, attribution: set[str]) -> None:
    sig = signature(title, "Summary: words of a summary have no attribution")
    assert sig.attribution == attribution
    assert sig.attribution <= sig.terms


def test_two_statements_of_one_speaker_are_two_events() -> None:
    """Titles that share nothing but who speaks (the Georgian set's two statements of
    Levan Makhashvili, one on Germany, one on the opposition) are not one story; what the
    speaker says about one event still is."""
    germany = signature(
        "ლევან მახაშვილი: გერმანია-საქართველოს ურთიერთობა სხვა რეჟიმში გადავიდა", ""
    )
    opposition = signature("ლევან მახაშვილი: ტრამპის წერილის შემდეგ ოპოზიციას ძილი გაუქრა", "")
    index = fresh_index()
    assert index.similarity(germany, opposition) == 0.0
    words_alone = index.similarity(Signature(germany.terms), Signature(opposition.terms))
    assert words_alone >= index.settings.threshold  # the speaker's name alone would join them
    assert index.add(1, "imedi", T0, germany) is None
    assert index.add(2, "on.ge", T0 + timedelta(minutes=10), opposition) is None
    # The same statement in another outlet's words joins the first.
    again = signature("ლევან მახაშვილი: გერმანიასთან ურთიერთობა სხვა რეჟიმში გადავიდა", "")
    assert index.add(3, "formula", T0 + timedelta(minutes=20), again) == 1
    # An entry with no term besides its attribution (its other words were a rule's) says
    # nothing of what it is about: its words count as any others.
    only_speaker = signature("Peskov: peacekeepers", "", ignore=["peacekeepers"])
    assert only_speaker.terms == only_speaker.attribution
    assert index.add(4, "tass", T0, only_speaker) is None
    assert index.add(5, "ria", T0, signature("Peskov: peacekeepers", "")) == 4


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Взрыв в порту Баку: есть пострадавшие", "Взрыв в порту Баку: подробности"),
        (
            "Многотысячный митинг в Ереване: Галстанян призвал к отставке",
            "Многотысячный митинг в Ереване: полиция перекрыла проспект",
        ),
        ("Explosion rocks Baku port: ministry", "Explosion rocks Baku port: witnesses"),
    ],
)
def test_titles_opening_with_the_same_event_are_one_story(first: str, second: str) -> None:
    """Three words or more before a colon are as often the event as a speaker: two reports
    that share only them are one story."""
    index = fresh_index()
    assert index.add(1, "apa", T0, signature(first, "")) is None
    assert index.add(2, "trend", T0 + timedelta(minutes=30), signature(second, "")) == 1
