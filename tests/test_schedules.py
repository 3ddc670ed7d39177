"""Schedules of the daily briefings: the TOML contract, its errors, and the cron arithmetic."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from briefing.config import Settings
from briefing.daily.collectors import FeedSpec, FolderSpec, UrlSpec
from briefing.daily.delivery import DirDelivery, StoreDelivery, WebhookDelivery
from briefing.daily.schedules import (
    Schedule,
    due_run,
    load_schedules,
    next_run,
    run_date,
    trigger,
    window_start,
)
from briefing.errors import ConfigError, UserError

BERLIN = ZoneInfo("Europe/Berlin")

#: The example of the issue, with the webhook on a loopback address.
ISSUE_EXAMPLE = """\
[[schedule]]
name = "russia-us"
cron = "0 7 * * *"            # standard 5-field cron
timezone = "Europe/Berlin"
model = "extractive"           # or any litellm model string
prompt = "briefing@1"          # optional
window = "24h"                 # only items first seen in this window
sources = [
  { kind = "folder", path = "seeds/", glob = "*.txt" },
  { kind = "url",  url = "https://example.org/article" },
  { kind = "feed", url = "https://example.org/rss.xml" },
]
deliver = [ { kind = "store" }, { kind = "dir", path = "out/", formats = ["md", "json"] },
            { kind = "webhook", url = "http://127.0.0.1:8765/x" } ]
"""

MINIMAL = """\
[[schedule]]
name = "{name}"
cron = "0 7 * * *"
sources = [{{ kind = "folder", path = "seeds/" }}]
"""


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "briefings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def schedule(cron: str, timezone: str = "UTC", **fields: object) -> Schedule:
    return Schedule.model_validate(
        {
            "name": "daily",
            "cron": cron,
            "timezone": timezone,
            "sources": [{"kind": "folder", "path": "seeds/"}],
            **fields,
        }
    )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- the file ---------------------------------------------------------------------------------


def test_the_issue_example_loads(tmp_path: Path) -> None:
    (loaded,) = load_schedules(write(tmp_path, ISSUE_EXAMPLE))
    assert loaded.name == "russia-us"
    assert loaded.cron == "0 7 * * *"
    assert loaded.zone == BERLIN
    assert loaded.model == "extractive"
    assert loaded.prompt == "briefing@1"
    assert loaded.window_delta == timedelta(hours=24)
    assert loaded.sources == [
        FolderSpec(path="seeds/", glob="*.txt"),
        UrlSpec(url="https://example.org/article"),  # type: ignore[arg-type]
        FeedSpec(url="https://example.org/rss.xml"),  # type: ignore[arg-type]
    ]
    store, folder, hook = loaded.deliver
    assert isinstance(store, StoreDelivery)
    assert isinstance(folder, DirDelivery)
    assert folder.formats == ["md", "json"]
    assert isinstance(hook, WebhookDelivery)
    assert str(hook.url) == "http://127.0.0.1:8765/x"
    assert hook.secret_env is None
    assert loaded.empty_day_note is False
    assert loaded.options.model_dump(exclude_none=True) == {}


def test_relative_paths_resolve_against_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (loaded,) = load_schedules(write(conf, ISSUE_EXAMPLE))
    assert loaded.base_dir == conf
    folder = loaded.sources[0]
    assert isinstance(folder, FolderSpec)
    assert loaded.resolve_path(folder.path) == conf / "seeds"
    assert loaded.resolve_path("/srv/out") == Path("/srv/out")
    # The paths stay as written, so the schedule dumps back to what the file says...
    assert loaded.model_dump(mode="json")["sources"][0]["path"] == "seeds/"
    assert loaded.model_dump(mode="json")["window"] == "24h"
    # ...and base_dir is neither dumped nor lost by a copy.
    assert "base_dir" not in loaded.model_dump()
    assert loaded.model_copy().base_dir == conf
    # A schedule not loaded from a file resolves against the working directory.
    assert schedule("0 7 * * *").resolve_path("seeds") == Path("seeds")


def test_defaults(tmp_path: Path) -> None:
    (loaded,) = load_schedules(write(tmp_path, MINIMAL.format(name="plain")))
    assert loaded.timezone == "UTC"
    assert loaded.model == "extractive"
    assert loaded.prompt is None
    assert loaded.deliver == [StoreDelivery()]
    assert DirDelivery(path="out").formats == ["md"]


def test_several_schedules_keep_their_order(tmp_path: Path) -> None:
    text = MINIMAL.format(name="b-first") + MINIMAL.format(name="a_second")
    assert [s.name for s in load_schedules(write(tmp_path, text))] == ["b-first", "a_second"]


def test_an_empty_file_has_no_schedules(tmp_path: Path) -> None:
    assert load_schedules(write(tmp_path, "# nothing yet\n")) == []


def test_the_window_keeps_its_spelling_and_bounds() -> None:
    assert schedule("0 7 * * *", window="1d12h").window_delta == timedelta(hours=36)
    assert schedule("0 7 * * *", window="30m").window_delta == timedelta(minutes=30)
    assert schedule("0 7 * * *", window="31d").window_delta == timedelta(days=31)
    assert schedule("0 7 * * *", window="1d12h").model_dump()["window"] == "1d12h"


def test_the_settings_name_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().schedules_file is None
    monkeypatch.setenv("BRIEFING_SCHEDULES", str(tmp_path / "b.toml"))
    assert Settings().schedules_file == tmp_path / "b.toml"
    # The CLI's --config sets it by name.
    assert Settings(schedules_file=tmp_path / "c.toml").schedules_file == tmp_path / "c.toml"


# --- what a bad file says ---------------------------------------------------------------------

GOOD_FIRST = MINIMAL.format(name="first")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'name = "russia-us"\ncron = "0 7 * * *"\nsources = [{ kind = "folder" }]',
            "schedule[1] (russia-us).sources[0].path: required",
        ),
        (
            'name = "Russia US"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (Russia US).name: 'Russia US' is not a schedule name",
        ),
        (
            'cron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1].name: required",
        ),
        (
            'name = "s"\ncron = "0 7 * * * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: expected 5 fields (minute hour day-of-month month "
            "day-of-week), got 6",
        ),
        (
            'name = "s"\ncron = "61 7 * * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: minute field '61': the last value (61) is higher than the "
            "maximum value (59)",
        ),
        (
            'name = "s"\ncron = "0 24 * * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: hour field '24'",
        ),
        (
            'name = "s"\ncron = "0 7 0 * *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: day-of-month field '0'",
        ),
        (
            'name = "s"\ncron = "0 7 * 13 *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: month field '13'",
        ),
        (
            'name = "s"\ncron = "0 7 * * 8"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: day-of-week field '8': '8' is not a weekday",
        ),
        (
            'name = "s"\ncron = "0 7 * * fri-mon"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: day-of-week field 'fri-mon': range 'fri-mon' runs backwards",
        ),
        (
            'name = "s"\ncron = "0 7 31 4 *"\nsources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).cron: '0 7 31 4 *' never matches a date",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\ntimezone = "Europe/Berln"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).timezone: unknown time zone 'Europe/Berln'; expected an IANA name",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\ntimezone = "../../etc/passwd"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).timezone: unknown time zone",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nprompt = "Briefing v1"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).prompt: invalid prompt reference 'Briefing v1'",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nwindow = "24 hours"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).window: invalid duration '24 hours'",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nwindow = "0h"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).window: window '0h' must be longer than zero",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nwindow = "32d"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).window: window '32d' is longer than the maximum of 31d",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"',
            "schedule[1] (s).sources: required",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = []',
            "schedule[1] (s).sources: List should have at least 1 item",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "ftp", path = "x" }]',
            "schedule[1] (s).sources[0]: Input tag 'ftp' found using 'kind' does not match",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\n'
            'sources = [{ kind = "folder", path = "x" }, { kind = "url", url = "nope" }]',
            "schedule[1] (s).sources[1].url: Input should be a valid URL",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\ntmezone = "UTC"\n'
            'sources = [{ kind = "folder", path = "x" }]',
            "schedule[1] (s).tmezone: unknown key (a typo?)",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            "deliver = []",
            "schedule[1] (s).deliver: List should have at least 1 item",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "dir", path = "out", formats = ["md", "md"] }]',
            "schedule[1] (s).deliver[0].formats: formats must not repeat",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "store" }, { kind = "dir", path = "out", formats = ["pdf"] }]',
            "schedule[1] (s).deliver[1].formats[0]: Input should be 'md' or 'json'",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "dir", path = "out", formats = [] }]',
            "schedule[1] (s).deliver[0].formats: List should have at least 1 item",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "store" }, { kind = "store" }]',
            "schedule[1] (s).deliver: deliver[1] repeats deliver[0]",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "webhook", url = "ftp://example.org/x" }]',
            "schedule[1] (s).deliver[0].url: URL scheme should be 'http' or 'https'",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "webhook", url = "https://example.org/x", '
            'headers = { "X-Briefing-Signature" = "forged" } }]',
            "schedule[1] (s).deliver[0].headers: header 'X-Briefing-Signature' is set by the "
            "delivery itself",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'deliver = [{ kind = "webhook", url = "https://example.org/x", timeout_s = 0 }]',
            "schedule[1] (s).deliver[0].timeout_s: Input should be greater than 0",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            "options = { key_points = 0 }",
            "schedule[1] (s).options.key_points: Input should be greater than or equal to 1",
        ),
        (
            'name = "s"\ncron = "0 7 * * *"\nsources = [{ kind = "folder", path = "x" }]\n'
            'options = { model = "gpt-4o" }',
            "schedule[1] (s).options.model: unknown key (a typo?)",
        ),
    ],
)
def test_a_bad_field_is_named(tmp_path: Path, table: str, expected: str) -> None:
    path = write(tmp_path, GOOD_FIRST + "\n[[schedule]]\n" + table + "\n")
    with pytest.raises(ConfigError) as caught:
        load_schedules(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_secret_put_in_secret_env_is_not_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.format(name="s") + 'deliver = [{ kind = "webhook", url = "https://example.org/x", '
        'secret_env = "s3cr3t-Value!" }]\n',
    )
    with pytest.raises(
        ConfigError, match=r"\.deliver\[0\]\.secret_env: secret_env must be"
    ) as caught:
        load_schedules(path)
    assert "s3cr3t" not in str(caught.value)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = (
        '[[schedule]]\nname = "a"\ncron = "0 7 * *"\ntimezone = "Mars/Olympus"\n'
        'sources = [{ kind = "folder", path = "x" }]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_schedules(write(tmp_path, text))
    message = str(caught.value)
    assert "2 problems" in message
    assert "schedule[0] (a).cron: expected 5 fields" in message
    assert "schedule[0] (a).timezone: unknown time zone 'Mars/Olympus'" in message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = MINIMAL.format(name="dup") + MINIMAL.format(name="other") + MINIMAL.format(name="dup")
    with pytest.raises(
        ConfigError, match=r"schedule\[2\] \(dup\): the name 'dup' is already used by schedule\[0\]"
    ):
        load_schedules(write(tmp_path, text))


def test_a_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = '[[schedule]]\nname = "a"\ncron = 0 7 * * *\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 3") as caught:
        load_schedules(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[schedule]\nname = "a"\n', "'schedule' must be an array of tables: write [[schedule]]"),
        ('title = "mine"\n' + MINIMAL.format(name="a"), "unknown top-level key(s) 'title'"),
    ],
)
def test_the_file_must_hold_schedule_tables(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_schedules(write(tmp_path, text))
    assert expected in str(caught.value)


def test_a_missing_or_binary_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such schedules file"):
        load_schedules(tmp_path / "nope.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"name = '\xff'\n")
    with pytest.raises(ConfigError, match=r"bin\.toml: not UTF-8 text \(byte 8\)"):
        load_schedules(binary)


# --- time -------------------------------------------------------------------------------------


def test_a_berlin_morning_job_follows_summer_time() -> None:
    daily = schedule("0 7 * * *", "Europe/Berlin")
    # Spring forward on Sunday 29 March 2026: 07:00 is 06:00 UTC before, 05:00 UTC after.
    assert next_run(daily, utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 6)
    assert next_run(daily, utc(2026, 3, 28, 6)) == utc(2026, 3, 29, 5)
    assert next_run(daily, utc(2026, 3, 29, 5)) == utc(2026, 3, 30, 5)
    # Fall back on Sunday 25 October 2026: 05:00 UTC before, 06:00 UTC after.
    assert next_run(daily, utc(2026, 10, 24, 0)) == utc(2026, 10, 24, 5)
    assert next_run(daily, utc(2026, 10, 24, 5)) == utc(2026, 10, 25, 6)
    for moment in (utc(2026, 3, 29, 5), utc(2026, 10, 25, 6)):
        local = moment.astimezone(BERLIN)
        assert (local.hour, local.minute) == (7, 0)


def test_a_time_skipped_by_spring_forward_runs_an_hour_later_that_day() -> None:
    nightly = schedule("30 2 * * *", "Europe/Berlin")
    runs = [next_run(nightly, utc(2026, 3, 27, 0))]
    for _ in range(3):
        runs.append(next_run(nightly, runs[-1]))
    # 02:30 does not exist on 29 March in Berlin: that day's run is at 03:30 CEST.
    assert runs == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]
    assert runs[2].astimezone(BERLIN).isoformat() == "2026-03-29T03:30:00+02:00"
    # No day is lost or doubled.
    assert [run_date(nightly, r) for r in runs] == [date(2026, 3, d) for d in (27, 28, 29, 30)]


def test_a_time_repeated_by_fall_back_runs_once() -> None:
    nightly = schedule("30 2 * * *", "Europe/Berlin")
    first = next_run(nightly, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first 02:30 of the day
    assert next_run(nightly, first) == utc(2026, 10, 26, 1, 30)  # not 01:30 UTC, 02:30 CET
    # APScheduler's own trigger fires both; the once-per-day run key absorbs the second.
    fire = trigger(nightly).get_next_fire_time(None, first + timedelta(seconds=1))
    assert fire.astimezone(UTC) == utc(2026, 10, 25, 1, 30)
    assert run_date(nightly, fire) == run_date(nightly, first) == date(2026, 10, 25)


def test_weekdays_are_numbered_as_in_cron() -> None:
    # APScheduler 3 counts from Monday = 0; cron from Sunday = 0 (and 7).
    friday = utc(2026, 1, 2, 12)  # a Friday

    def weekdays(cron: str, count: int = 5) -> list[str]:
        out, moment = [], friday
        for _ in range(count):
            moment = next_run(schedule(cron), moment)
            out.append(moment.strftime("%a"))
        return out

    assert weekdays("0 7 * * 1-5") == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert weekdays("0 7 * * mon-fri") == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert weekdays("0 7 * * 0", 2) == ["Sun", "Sun"]
    assert weekdays("0 7 * * 7", 2) == ["Sun", "Sun"]
    assert weekdays("0 7 * * 5-7", 3) == ["Sat", "Sun", "Fri"]
    assert weekdays("0 7 * * */2", 4) == ["Sat", "Sun", "Tue", "Thu"]
    assert weekdays("0 7 * * 1,3", 3) == ["Mon", "Wed", "Mon"]


def test_both_day_fields_restricted_match_either_as_in_cron() -> None:
    # 07:00 on the 13th or on any Friday.
    runs, moment = [], utc(2026, 1, 1)
    for _ in range(5):
        moment = next_run(schedule("0 7 13 * 5"), moment)
        runs.append(moment.date())
    assert runs == [date(2026, 1, d) for d in (2, 9, 13, 16, 23)]


def test_run_date_is_the_local_date() -> None:
    # 00:30 in Berlin is 23:30 UTC of the day before (in winter).
    early = schedule("30 0 * * *", "Europe/Berlin")
    scheduled = next_run(early, utc(2026, 1, 15, 12))
    assert scheduled == utc(2026, 1, 15, 23, 30)
    assert run_date(early, scheduled) == date(2026, 1, 16)
    assert due_run(early, utc(2026, 1, 15, 23, 45)) == (date(2026, 1, 16), scheduled)


def test_window_start() -> None:
    weekly = schedule("0 7 * * 1", window="7d")
    scheduled = utc(2026, 1, 5, 7)
    assert window_start(weekly, scheduled) == utc(2025, 12, 29, 7)
    assert window_start(schedule("0 7 * * *", window="1d12h"), scheduled) == utc(2026, 1, 3, 19)


def test_naive_datetimes_are_refused() -> None:
    daily = schedule("0 7 * * *")
    with pytest.raises(UserError, match="timezone-aware"):
        next_run(daily, datetime(2026, 1, 1, 12))
    with pytest.raises(UserError, match="timezone-aware"):
        due_run(daily, datetime(2026, 1, 1, 12))


def test_next_run_is_strictly_after_and_due_run_at_or_before() -> None:
    daily = schedule("0 7 * * *", "Europe/Berlin")
    at_seven = utc(2026, 6, 1, 5)  # 07:00 CEST
    assert next_run(daily, at_seven) == utc(2026, 6, 2, 5)
    assert next_run(daily, at_seven - timedelta(microseconds=1)) == at_seven
    assert due_run(daily, at_seven) == (date(2026, 6, 1), at_seven)
    assert due_run(daily, at_seven - timedelta(seconds=1)) == (
        date(2026, 5, 31),
        utc(2026, 5, 31, 5),
    )


def test_a_service_down_for_days_runs_only_the_latest_missed_run() -> None:
    daily = schedule("0 7 * * *", "Europe/Berlin")
    # Down from Monday 30 March 06:00 UTC until Wednesday 1 April 10:00 local: the Monday,
    # Tuesday and Wednesday runs were missed; only Wednesday's is due at start-up.
    with time_machine.travel(datetime(2026, 4, 1, 10, tzinfo=BERLIN), tick=False):
        due = due_run(daily, datetime.now(UTC))
    assert due == (date(2026, 4, 1), utc(2026, 4, 1, 5))
    # Started before Wednesday's time, Tuesday's run is the one that is due.
    with time_machine.travel(datetime(2026, 4, 1, 6, 59, tzinfo=BERLIN), tick=False):
        due = due_run(daily, datetime.now(UTC))
    assert due == (date(2026, 3, 31), utc(2026, 3, 31, 5))


def test_the_due_run_across_the_spring_forward_change() -> None:
    nightly = schedule("30 2 * * *", "Europe/Berlin")
    with time_machine.travel(datetime(2026, 3, 29, 3, 15, tzinfo=BERLIN), tick=False):
        assert due_run(nightly, datetime.now(UTC)) == (date(2026, 3, 28), utc(2026, 3, 28, 1, 30))
    with time_machine.travel(datetime(2026, 3, 29, 3, 45, tzinfo=BERLIN), tick=False):
        assert due_run(nightly, datetime.now(UTC)) == (date(2026, 3, 29), utc(2026, 3, 29, 1, 30))


@pytest.mark.parametrize(
    ("cron", "now", "expected"),
    [
        # Every minute: this very minute.
        ("* * * * *", utc(2026, 5, 5, 10, 7, 30), utc(2026, 5, 5, 10, 7)),
        # Dense in the past, nothing lately: the last minute of the 1st.
        ("* * 1 * *", utc(2026, 5, 28, 10), utc(2026, 5, 1, 23, 59)),
        # Yearly: last year's.
        ("0 6 1 1 *", utc(2026, 5, 5), utc(2026, 1, 1, 6)),
        # Leap days only: two years back.
        ("0 0 29 2 *", utc(2026, 3, 4), utc(2024, 2, 29)),
        # Feb 29 or any Monday of February: the last Monday of February 2026.
        ("0 0 29 2 1", utc(2026, 3, 4), utc(2026, 2, 23)),
    ],
)
def test_due_run_finds_the_latest_time_for_any_rhythm(
    cron: str, now: datetime, expected: datetime
) -> None:
    due = due_run(schedule(cron), now)
    assert due is not None
    assert due[1] == expected


def test_the_readme_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Daily briefings", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (loaded,) = load_schedules(write(tmp_path, example))
    assert loaded.name == "russia-us"
    assert loaded.options.key_points == 5
    assert [d.kind for d in loaded.deliver] == ["store", "dir", "webhook"]
    assert loaded.deliver[2].content == "changes"  # type: ignore[union-attr]
    assert loaded.scope == "new"
