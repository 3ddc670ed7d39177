"""Schedules of the daily briefings: what runs when, over which sources, delivered where.

A schedule file (`BRIEFING_SCHEDULES`) holds `[[schedule]]` tables, each validated by
`Schedule`, the same model the API's /v1/schedules uses.

Relative paths. A `folder` source's `path` and a `dir` delivery's `path` may be relative;
they are relative to the folder of the schedule file. `load_schedules` keeps the paths as
written (so a schedule dumps back to what the file says) and records that folder on each
schedule as `Schedule.base_dir`; `Schedule.resolve_path` applies it. A schedule made any
other way (the API, `Schedule(...)`) has no base_dir until `with_base_dir` gives it one, and
its relative paths are relative to the working directory. `base_dir` is not a field: it is
neither dumped nor accepted from input, and `model_copy` keeps it.

Time. `cron` is a standard 5-field crontab line (minute hour day-of-month month
day-of-week; day-of-week 0 or 7 is Sunday; when both day fields are restricted either one
matches, as in cron) read in the schedule's `timezone`. APScheduler's CronTrigger does the
arithmetic. Across DST changes, a wall-clock time that does not exist (02:30 on the
spring-forward day in Europe/Berlin) runs an hour later by the clock (03:30 CEST, the same
instant as 02:30 CET), and one that occurs twice (on the fall-back day) runs at its first
occurrence only. A run's date is the scheduled time's date in the schedule's time zone; the
once-per-day key of a run is (schedule name, run date).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from briefing.config import EXTRACTIVE
from briefing.daily.collectors import CollectorSpec, FolderSpec
from briefing.daily.delivery import DeliverySpec, DirDelivery, StoreDelivery
from briefing.errors import ConfigError, PromptError, UserError
from briefing.models.prompts import PromptLibrary, parse_ref
from briefing.pipeline.request import BriefingOptions

if TYPE_CHECKING:
    from briefing.config import Settings

__all__ = [
    "MAX_WINDOW",
    "Schedule",
    "describe_problems",
    "due_run",
    "load_schedules",
    "next_run",
    "run_date",
    "trigger",
    "untrusted_problems",
    "window_start",
]

#: The longest `window` a schedule may ask for.
MAX_WINDOW = timedelta(days=31)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_WINDOW = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CRON_LABELS = ("minute", "hour", "day-of-month", "month", "day-of-week")
# Standard cron numbers weekdays from Sunday = 0 (7 is Sunday too); APScheduler 3 from
# Monday = 0. Weekdays are therefore handed to APScheduler by name, never by number.
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# How far back due_run looks for the latest scheduled time; a cron line that matches
# nothing in this span (Feb 29 on a Monday, say) has no due run.
_MAX_LOOKBACK = timedelta(days=366 * 30)
# Kinds that pydantic adds to an error's location inside the tagged unions of these lists.
_UNION_LISTS = frozenset({"sources", "deliver"})


def _parse_window(text: str) -> timedelta:
    match = _WINDOW.match(text)
    if not text or not match:
        raise ValueError(
            f"invalid duration {text!r}; expected a number and a unit (d, h, m, s) "
            "largest unit first, e.g. 30m, 24h, 7d, 1d12h"
        )
    seconds = sum(
        int(match.group(unit) or 0) * size
        for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    )
    if seconds <= 0:
        raise ValueError(f"window {text!r} must be longer than zero")
    if seconds > MAX_WINDOW.total_seconds():
        raise ValueError(f"window {text!r} is longer than the maximum of {MAX_WINDOW.days}d")
    return timedelta(seconds=seconds)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError: a key that is not a relative path inside the zone database.
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def _weekday_names(field: str) -> str:
    """A standard cron day-of-week field as APScheduler's weekday names."""
    days: set[int] = set()
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} must be a whole number above zero")
            step = int(step_text)
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _weekday(first), _weekday(last)
            if low > high:
                raise ValueError(f"range {base!r} runs backwards (Sunday is 0 or 7)")
        else:
            low = _weekday(base)
            high = 7 if slash else low
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(token: str) -> int:
    lowered = token.lower()
    if lowered in _WEEKDAYS:
        return _WEEKDAYS.index(lowered)
    if lowered.isdigit() and int(lowered) <= 7:
        return int(lowered)
    raise ValueError(f"{token!r} is not a weekday (0-7 with 0 and 7 Sunday, or sun-sat)")


def _triggers(cron: str, zone: Any) -> list[Any]:
    """APScheduler CronTriggers whose union is the cron line; ValueError names the field."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    for index, value in enumerate(fields):
        try:
            if index == 4:
                value = "*" if value == "*" else _weekday_names(value)
            CronTrigger(**{_CRON_FIELDS[index]: value}, timezone=UTC)
        except ValueError as exc:
            detail = re.sub(r"^Error validating expression '[^']*': ", "", str(exc))
            raise ValueError(f"{_CRON_LABELS[index]} field {fields[index]!r}: {detail}") from None
    weekdays = "*" if weekday == "*" else _weekday_names(weekday)
    # cron runs a job when either day field matches if both are restricted (a field that
    # starts with '*' is not); APScheduler would ask for both, so that case is two triggers.
    if day.startswith("*") or weekday.startswith("*"):
        lines = [f"{minute} {hour} {day} {month} {weekdays}"]
    else:
        lines = [f"{minute} {hour} {day} {month} *", f"{minute} {hour} * {month} {weekdays}"]
    return [CronTrigger.from_crontab(line, timezone=zone) for line in lines]


def _first_at_or_after(
    triggers: Sequence[Any], zone: ZoneInfo, moment: datetime
) -> datetime | None:
    """The earliest scheduled time at or after `moment` (whole seconds), in UTC."""
    while True:
        found = [t.get_next_fire_time(None, moment) for t in triggers]
        times: list[datetime] = [f.astimezone(UTC) for f in found if f is not None]
        if not times:
            return None
        first = min(times)
        # fold=1: the second pass of a wall-clock time on a fall-back day; it already ran.
        if first.astimezone(zone).fold == 0:
            return first
        moment = first + timedelta(seconds=1)


def _store_only() -> list[DeliverySpec]:
    return [StoreDelivery()]


class Schedule(BaseModel):
    """One daily briefing: when it runs, what it reads, and where the briefing goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Slug naming the schedule; part of output file names.")
    cron: str = Field(description="Standard 5-field cron line, read in `timezone`.")
    timezone: str = Field(default="UTC", description="IANA time zone of `cron` and run dates.")
    model: str = Field(default=EXTRACTIVE, min_length=1)
    prompt: str | None = Field(default=None, description="Reduce prompt as NAME@VERSION.")
    window: str = Field(
        default="24h",
        description="Only items first seen this long before the run: 30m, 24h, 7d, 1d12h.",
    )
    sources: list[CollectorSpec] = Field(min_length=1)
    scope: Literal["new", "all"] = Field(
        default="new",
        description="'new': brief the items first seen in the window (news); 'all': brief "
        "every source the collectors find, changed or not (a folder of living documents), "
        "unchanged ones from the map cache.",
    )
    deliver: list[DeliverySpec] = Field(default_factory=_store_only, min_length=1)
    empty_day_note: bool = Field(
        default=False, description="Deliver a short note on a day with nothing new."
    )
    options: BriefingOptions = Field(default_factory=BriefingOptions)

    _base_dir: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} is not a schedule name: use lowercase letters, digits, '-' and '_', "
                "starting with a letter or digit, at most 64 characters"
            )
        return name

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        triggers = _triggers(cron, UTC)
        if _first_at_or_after(triggers, ZoneInfo("UTC"), datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ValueError(f"{cron!r} never matches a date")
        return cron

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        _zone(name)
        return name

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, ref: str | None) -> str | None:
        if ref is not None:
            try:
                parse_ref(ref)
            except PromptError as exc:
                raise ValueError(str(exc)) from None
        return ref

    @field_validator("window")
    @classmethod
    def _window(cls, text: str) -> str:
        _parse_window(text)
        return text

    @field_validator("deliver")
    @classmethod
    def _distinct(cls, deliver: list[Any]) -> list[Any]:
        for index, spec in enumerate(deliver):
            if spec in deliver[:index]:
                raise ValueError(f"deliver[{index}] repeats deliver[{deliver.index(spec)}]")
        return deliver

    @property
    def window_delta(self) -> timedelta:
        """`window` as a duration."""
        return _parse_window(self.window)

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def base_dir(self) -> Path | None:
        """The folder relative paths are relative to: the schedule file's, when loaded."""
        return self._base_dir

    def with_base_dir(self, base_dir: Path | None) -> Schedule:
        """A copy whose relative paths resolve against `base_dir`."""
        copy = self.model_copy()
        copy._base_dir = base_dir
        return copy

    def resolve_path(self, path: str) -> Path:
        """A source's or delivery's `path` made absolute against `base_dir` when relative."""
        resolved = Path(path).expanduser()
        if self._base_dir is not None and not resolved.is_absolute():
            resolved = self._base_dir / resolved
        return resolved


def trigger(schedule: Schedule) -> Any:
    """The APScheduler trigger of the schedule (a CronTrigger, or an OrTrigger of two).

    It fires a time repeated by a fall-back DST change twice; `next_run` does not, and the
    once-per-day run key absorbs the second firing either way.
    """
    triggers = _triggers(schedule.cron, schedule.zone)
    if len(triggers) == 1:
        return triggers[0]
    from apscheduler.triggers.combining import OrTrigger

    return OrTrigger(triggers)


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UserError(f"{what} must be a timezone-aware datetime, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first scheduled time strictly after `after`, in UTC."""
    moment = _aware(after, "after") + timedelta(microseconds=1)
    found = _first_at_or_after(_triggers(schedule.cron, schedule.zone), schedule.zone, moment)
    if found is None:  # the validator refuses cron lines that never match
        raise UserError(f"schedule {schedule.name!r} has no run after {after.isoformat()}")
    return found


def due_run(schedule: Schedule, now: datetime) -> tuple[date, datetime] | None:
    """(run date, scheduled time in UTC) of the latest scheduled time at or before `now`.

    A service starting after missing runs calls this once per schedule and runs only this
    latest one (if the store has no run for its date), so missed days do not pile up.
    """
    now = _aware(now, "now")
    zone = schedule.zone
    triggers = _triggers(schedule.cron, zone)

    def any_between(start: datetime) -> bool:
        found = _first_at_or_after(triggers, zone, start)
        return found is not None and found <= now

    # Gallop back until some scheduled time lies in [now - span, now], then bisect to the
    # second: a handful of trigger calls, however rare or frequent the schedule.
    span = timedelta(minutes=1)
    upper = now + timedelta(seconds=1)
    while not any_between(now - span):
        upper = now - span
        span *= 2
        if span > _MAX_LOOKBACK:
            return None
    lower = now - span
    while upper - lower > timedelta(seconds=1):
        middle = lower + (upper - lower) / 2
        if any_between(middle):
            lower = middle
        else:
            upper = middle
    scheduled = _first_at_or_after(triggers, zone, lower)
    assert scheduled is not None
    return run_date(schedule, scheduled), scheduled


def run_date(schedule: Schedule, scheduled_at: datetime) -> date:
    """The date a run belongs to: the scheduled time's date in the schedule's time zone."""
    return _aware(scheduled_at, "scheduled_at").astimezone(schedule.zone).date()


def window_start(schedule: Schedule, scheduled_at: datetime) -> datetime:
    """The start of the run's window: items first seen before it are not new."""
    return _aware(scheduled_at, "scheduled_at") - schedule.window_delta


# --- schedules from untrusted clients -------------------------------------------------------

#: Where a problem lies in a schedule (as pydantic locates errors) and what it is.
Problem = tuple[tuple[str | int, ...], str]
_ROOTS_SETTING = "BRIEFING_SCHEDULE_ROOTS"


def untrusted_problems(schedule: Schedule, settings: Settings) -> list[Problem]:
    """Why this service refuses `schedule` from a client of the API; empty when it may run.

    The schedules file is the operator's and trusted; a schedule from the API may only
    read and write files inside `schedule_roots` (resolved, so neither `..` nor a symlink
    leads out), use a model the service offers and a prompt it has.
    """
    from briefing.pipeline.engines import offered_models

    problems: list[Problem] = []
    roots = settings.schedule_root_list
    for index, source in enumerate(schedule.sources):
        if isinstance(source, FolderSpec):
            where: tuple[str | int, ...] = ("sources", index, source.kind)
            problems += _path_problems((*where, "path"), source.path, roots, "read")
            pattern = PurePath(source.glob)
            if pattern.is_absolute() or ".." in pattern.parts:
                message = "must be a pattern inside the folder (no '..', not absolute)"
                problems.append(((*where, "glob"), message))
    for index, spec in enumerate(schedule.deliver):
        if isinstance(spec, DirDelivery):
            location = ("deliver", index, spec.kind, "path")
            problems += _path_problems(location, spec.path, roots, "write")
    model = EXTRACTIVE if schedule.model.strip().lower() == EXTRACTIVE else schedule.model
    offered = offered_models(settings)
    if model not in offered:
        problems.append(
            (
                ("model",),
                f"model {schedule.model!r} is not offered by this service; use one of "
                f"{offered} (GET /v1/models lists them)",
            )
        )
    if schedule.prompt is not None:
        try:
            PromptLibrary(settings.prompts_dir).get(schedule.prompt)
        except PromptError as exc:
            problems.append((("prompt",), str(exc)))
    return problems


def describe_problems(problems: Sequence[Problem]) -> str:
    """Problems as one line: "deliver.0.dir.path: …; model: …"."""
    return "; ".join(
        ".".join(str(p) for p in where) + f": {message}" for where, message in problems
    )


def _path_problems(
    location: tuple[str | int, ...], path: str, roots: list[Path], verb: str
) -> list[Problem]:
    if not roots:
        return [
            (
                location,
                f"schedules defined through the API may {verb} files only inside the folders "
                f"of {_ROOTS_SETTING}, and this service sets none",
            )
        ]
    given = Path(path)
    try:
        # resolve() follows every symlink and folds '..', so the check is on where the
        # files really are; a path that does not exist yet resolves as far as it does.
        inside = given.is_absolute() and any(given.resolve().is_relative_to(root) for root in roots)
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
        inside = False
    if inside:
        return []
    # Neither the resolved path nor the roots are shown: they would map the server's disk.
    return [
        (
            location,
            f"{path!r} must be an absolute path inside one of the folders of {_ROOTS_SETTING}",
        )
    ]


# --- files ----------------------------------------------------------------------------------


def load_schedules(path: str | Path) -> list[Schedule]:
    """The schedules of a TOML file, each with the file's folder as base_dir."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such schedules file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - {"schedule"})
    if unknown:
        raise ConfigError(
            f"{file}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            "schedules go in [[schedule]] tables"
        )
    tables = data.get("schedule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{file}: 'schedule' must be an array of tables: write [[schedule]]")
    base_dir = file.absolute().parent
    problems: list[str] = []
    schedules: list[Schedule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        name = table.get("name")
        label = f"schedule[{index}]" + (f" ({name})" if isinstance(name, str) and name else "")
        try:
            schedule = Schedule.model_validate(table)
        except ValidationError as exc:
            problems += [f"{label}{_where(e['loc'])}: {_message(e)}" for e in exc.errors()]
            continue
        if schedule.name in seen:
            problems.append(
                f"{label}: the name {schedule.name!r} is already used by "
                f"schedule[{seen[schedule.name]}]"
            )
            continue
        seen[schedule.name] = index
        schedules.append(schedule.with_base_dir(base_dir))
    if len(problems) == 1:
        raise ConfigError(f"{file}: {problems[0]}")
    if problems:
        raise ConfigError(
            f"{file}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
        )
    return schedules


def _where(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a path: ('sources', 0, 'folder', 'path') -> .sources[0].path."""
    out = ""
    for index, item in enumerate(loc):
        if isinstance(item, int):
            out += f"[{item}]"
        elif index >= 2 and isinstance(loc[index - 1], int) and loc[index - 2] in _UNION_LISTS:
            continue  # the tag pydantic adds for the member of a tagged union
        else:
            out += f".{item}"
    return out


def _message(error: Any) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key (a typo?)"
    message = str(error.get("msg", ""))
    return message.removeprefix("Value error, ")
