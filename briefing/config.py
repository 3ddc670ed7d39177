"""All settings in one place, read from the environment (prefix BRIEFING_) and CLI flags."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The model string that selects the deterministic, LLM-free engine.
EXTRACTIVE = "extractive"


def default_data_dir() -> Path:
    """Per-user data directory (call log, store)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("briefing", appauthor=False))


def _networks(raw: str | None) -> list[IPv4Network | IPv6Network]:
    networks: list[IPv4Network | IPv6Network] = []
    for item in (raw or "").split(","):
        if item.strip():
            try:
                networks.append(ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"fetch_allowed_networks: {item.strip()!r} is not a network "
                    "(expected CIDR notation such as 10.1.2.0/24 or fd00::/8)"
                ) from None
    return networks


def _roots(raw: str | None) -> list[Path]:
    roots: list[Path] = []
    for item in (raw or "").split(","):
        if item.strip():
            root = Path(item.strip()).expanduser()
            if not root.is_absolute():
                raise ValueError(
                    f"schedule_roots: {item.strip()!r} is not an absolute folder "
                    "(BRIEFING_SCHEDULE_ROOTS takes comma-separated absolute paths)"
                )
            # Resolved once here, so a root that is (or lies under) a symlink compares
            # with the resolved paths of the schedules.
            roots.append(root.resolve())
    return roots


class Settings(BaseSettings):
    """Every tunable of the pipeline; CLI flags override environment variables."""

    model_config = SettingsConfigDict(env_prefix="BRIEFING_", extra="ignore", populate_by_name=True)

    model: str = Field(
        default=EXTRACTIVE,
        description="'extractive' (no LLM), 'local/smollm2', 'local/<path.gguf>', 'local/NAME' "
        "of local_models, or any litellm model string.",
    )
    models: str | None = Field(
        default=None,
        description="Comma-separated litellm models the service offers besides 'model' "
        "and 'extractive' (a client picks one per briefing).",
    )
    api_base: str | None = Field(default=None, description="Override the provider's base URL.")
    api_key: SecretStr | None = Field(
        default=None, description="Provider API key; litellm's provider variables work too."
    )
    prompt: str = Field(default="briefing@2", description="Reduce prompt as NAME@VERSION.")
    map_prompt: str = Field(default="extract-claims@2")
    condense_prompt: str = Field(default="condense-claims@1")
    prompts_dir: Path | None = Field(
        default=None, description="Directory of prompt templates; the bundled set when unset."
    )

    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Requests per call, counting retries of transient errors.",
    )
    retry_initial_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    rate_limit_rpm: int = Field(
        default=0,
        ge=0,
        description="Requests per minute a model may be sent (0: no limit); in celery mode "
        "one budget shared by every worker, through the broker's Redis.",
    )
    rate_limit_tpm: int = Field(
        default=0,
        ge=0,
        description="Tokens per minute (prompt plus max_tokens) a model may be sent (0: no "
        "limit); shared like rate_limit_rpm.",
    )

    encoding: str = Field(default="o200k_base", description="tiktoken encoding for budgets.")
    chunk_tokens: int = Field(
        default=6000,
        ge=64,
        description="Source tokens (with their sentence tags) per map request; short sources "
        "share a request up to this size, long ones are split into chunks of it. Unless set, "
        "local models use their own (local/smollm2: 1200, with the version 1 prompts).",
    )
    chunk_overlap_tokens: int = Field(default=120, ge=0)
    context_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Model context window; litellm's model info (or 8192) when unset.",
    )
    claim_tokens: int = Field(
        default=300,
        ge=20,
        description="The map step asks for at most one claim per this many source tokens "
        "(at least 1, at most 16 a chunk); fewer, denser claims cost fewer tokens later.",
    )
    reduce_output_tokens: int = Field(default=2048, ge=128)

    call_log: Path | None = Field(
        default=None, description="SQLite file of model calls; <data dir>/calls.db when unset."
    )
    log_calls: bool = True
    log_call_content: bool = Field(
        default=True,
        description="Keep each call's messages and answer in the call log (secrets "
        "redacted), for `briefing calls show`; off keeps only its figures.",
    )
    reasks: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Times an answer that does not match the schema is sent back with the "
        "validation error before the call fails.",
    )
    response_format: Literal["auto", "json_schema", "json_object"] = Field(
        default="auto",
        description="How the output schema is asked for: 'json_schema' (the provider "
        "enforces it), 'json_object' (JSON mode, the schema in the prompt), or 'auto' "
        "(json_schema where litellm knows the model supports it, or for a local model; "
        "json_object otherwise).",
    )
    map_cache: bool = Field(
        default=True,
        description="Reuse the map step's claims of a source whose text, chunking, map "
        "prompt, model and model parameters are unchanged (service jobs and daily runs, "
        "kept in the store).",
    )

    check_method: Literal["offline", "judge", "auto", "nli"] = Field(
        default="auto",
        description="Faithfulness method: 'offline' (no model), 'judge' (an LLM), 'auto' "
        "(offline, combined with the judge when check_model is set), or 'nli' (the ONNX "
        "cross-encoder in check_nli_model).",
    )
    check_nli_model: Path | None = Field(
        default=None,
        description="Folder of an NLI cross-encoder exported to ONNX (model.onnx, "
        "tokenizer.json, config.json) for the 'nli' method; nothing is downloaded.",
    )
    check_model: str | None = Field(
        default=None,
        description="litellm model string of the LLM judge; no judge runs when unset.",
    )
    judge_prompt: str = Field(default="judge-claim@1", description="Judge prompt NAME@VERSION.")
    check_calibration: Path | None = Field(
        default=None,
        description="JSON table of judge weights and thresholds for 'auto'; the bundled "
        "briefing/faithfulness/check_calibration.json when unset.",
    )
    judge_document_chars: int = Field(
        default=12_000,
        ge=500,
        description="Documents up to this size go to the judge whole; longer ones as the "
        "passages around the best-matching sentences.",
    )
    on_unsupported: Literal["flag", "drop"] = Field(
        default="flag",
        description="What happens to claims the checker judges unsupported or contradicted: "
        "'flag' keeps them, marked; 'drop' removes them and lists them in the warnings.",
    )

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store (sqlite:///..., postgresql+psycopg://...); "
        "<data dir>/briefing.db when unset. May hold a password: never log it whole.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated keys; when set, every /v1 route needs "
        "'Authorization: Bearer <key>'.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the web pages' session cookies; needed for the pages when "
        "api_keys is set (at least 32 characters).",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long a web page session lasts."
    )
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )
    max_source_chars: int = Field(
        default=2_000_000, ge=1, description="Longest source text accepted, in characters."
    )
    max_check_pairs: int = Field(
        default=1000, ge=1, description="Most pairs one POST /v1/check may carry."
    )
    max_sources_per_briefing: int = Field(
        default=20, ge=1, description="Most sources one POST /v1/briefings may name."
    )
    max_sources_per_compare: int = Field(
        default=50, ge=1, description="Most sources one POST /v1/compare may carry."
    )
    max_wait_s: int = Field(
        default=60, ge=0, description="Longest ?wait= a POST /v1/briefings may ask for."
    )
    job_workers: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Briefing jobs the service runs at once; 0 runs none in this process.",
    )
    job_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a running job stays claimed without a heartbeat; after that a "
        "restarted (or another) service may take it over.",
    )
    job_heartbeat_s: float = Field(
        default=2.0, gt=0, description="How often a running job renews its lease and progress."
    )
    job_poll_s: float = Field(
        default=1.0, gt=0, description="How often an idle worker looks for queued jobs."
    )
    job_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Claims of a job whose worker died before it is failed instead of rerun.",
    )
    executor: Literal["inprocess", "celery"] = Field(
        default="inprocess",
        description="Who runs briefing jobs: `inprocess` (the service itself, "
        "BRIEFING_JOB_WORKERS at once) or `celery` (`briefing worker` processes fed through "
        "BRIEFING_BROKER_URL; the service only queues). Celery needs a PostgreSQL store.",
    )
    broker_url: SecretStr | None = Field(
        default=None,
        description="The Celery broker of `executor=celery`, e.g. redis://host:6379/0 (a "
        "password in it is kept out of logs).",
    )
    job_requeue_s: float = Field(
        default=30.0,
        gt=0,
        description="Celery mode: a job still queued this long after it was last sent to "
        "the broker is sent again (the broker lost it, e.g. a Redis restart).",
    )
    map_fanout_sources: int = Field(
        default=8,
        ge=1,
        description="Celery mode: an LLM briefing of more sources than this maps them in "
        "tasks of this many sources each, spread over the workers.",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="On shutdown, how long running jobs may finish before they are re-queued.",
    )

    fetch_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Longest one URL fetch may take in all (connecting, redirects, reading).",
    )
    fetch_dns_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Longest a host name lookup may take (the system resolver has no limit).",
    )
    fetch_concurrency: int = Field(
        default=8, ge=1, le=64, description="Pages a collection fetches at once, in all."
    )
    fetch_per_host: int = Field(
        default=2, ge=1, le=16, description="Pages a collection fetches at once from one host."
    )
    fetch_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest response body a fetch reads."
    )
    fetch_max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects one fetch follows before giving up."
    )
    fetch_allow_private: bool = Field(
        default=False,
        description="Let fetches reach private, loopback, link-local and other non-public "
        "addresses (off: such addresses are refused, redirects included).",
    )
    fetch_allowed_networks: str | None = Field(
        default=None,
        description="Comma-separated networks (CIDR, e.g. 10.1.2.0/24) that fetches may "
        "reach even though they are not public.",
    )

    local_models: Path | None = Field(
        default=None,
        description="TOML file of local GGUF models: [models.NAME] tables with path, and "
        "optionally context, threads, chat_format; run as local/NAME.",
    )
    schedules_file: Path | None = Field(
        default=None,
        # The issue names the variable BRIEFING_SCHEDULES; populate_by_name keeps
        # Settings(schedules_file=...) working for the CLI's --config.
        validation_alias="BRIEFING_SCHEDULES",
        description="TOML file of [[schedule]] tables (daily briefings); none when unset.",
    )
    schedule_roots: str | None = Field(
        default=None,
        description="Comma-separated absolute folders that schedules defined through the API "
        "may read (folder sources) and write (dir deliveries) in; none when unset, so such "
        "schedules are refused. The schedules file is trusted and not limited.",
    )
    scheduler: bool = Field(
        default=True,
        description="Run the daily-briefing schedules inside `briefing serve`; off: only "
        "`briefing daily run` (from cron or a timer) runs them.",
    )
    delivery_max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Requests per webhook delivery, counting retries of transient failures.",
    )
    delivery_backoff_s: float = Field(
        default=1.0, ge=0, description="First pause between webhook retries (it grows)."
    )
    delivery_backoff_max_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest pause between webhook retries; a receiver asking (Retry-After) "
        "for a longer one is not retried until the next delivery attempt.",
    )

    key_points: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Key points of an extractive briefing; of an LLM briefing whose reduce "
        "gave fewer than 3, the number it is topped up to from the map step's claims.",
    )
    summary_sentences: int = Field(
        default=4, ge=1, le=10, description="Extractive summary sentences."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap_tokens ({self.chunk_overlap_tokens}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        if self.job_heartbeat_s >= self.job_lease_s:
            raise ValueError(
                f"job_heartbeat_s ({self.job_heartbeat_s}) must be shorter than job_lease_s "
                f"({self.job_lease_s}), or running jobs lose their lease"
            )
        if self.executor == "celery":
            if self.broker_url is None or not self.broker_url.get_secret_value().strip():
                raise ValueError(
                    "executor=celery needs broker_url (BRIEFING_BROKER_URL, e.g. "
                    "redis://127.0.0.1:6379/0)"
                )
            if not self.store_url.startswith("postgres"):
                raise ValueError(
                    "executor=celery needs a store every machine can share: set "
                    "database_url (BRIEFING_DATABASE_URL) to a postgresql:// URL; a SQLite "
                    "file cannot be shared by the workers of a cluster"
                )
        _networks(self.fetch_allowed_networks)  # a bad network fails at start, not mid-run
        if self.session_secret is not None and len(self.session_secret.get_secret_value()) < 32:
            raise ValueError("session_secret must be at least 32 characters long")
        _roots(self.schedule_roots)
        return self

    @property
    def call_log_path(self) -> Path:
        """Where model calls are logged."""
        return self.call_log or default_data_dir() / "calls.db"

    @property
    def store_url(self) -> str:
        """The store's database URL; a SQLite file in the data directory by default."""
        return self.database_url or f"sqlite:///{default_data_dir() / 'briefing.db'}"

    @property
    def api_key_list(self) -> list[str]:
        """The accepted API keys; empty when the API is open."""
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def model_list(self) -> list[str]:
        """The extra models of `models`, in order, without repeats."""
        raw = self.models or ""
        return list(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))

    @property
    def fetch_network_list(self) -> list[IPv4Network | IPv6Network]:
        """The non-public networks fetches may reach anyway (`fetch_allowed_networks`)."""
        return _networks(self.fetch_allowed_networks)

    @property
    def schedule_root_list(self) -> list[Path]:
        """The folders API-defined schedules may use (`schedule_roots`), resolved."""
        return _roots(self.schedule_roots)

    @property
    def is_extractive(self) -> bool:
        """True when no language model is configured."""
        return self.model.strip().lower() == EXTRACTIVE
