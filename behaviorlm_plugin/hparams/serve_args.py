"""``behaviorlm serve``: the model to load, where to listen, batching and the request limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from behaviorlm_plugin.extras.constants import TEMPLATE_AUTO
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments, as_prior_correction

API_KEY_ENV = "BEHAVIORLM_API_KEY"


@dataclass
class ServeArguments:
    r"""Arguments of ``behaviorlm serve``.

    Model: model, adapter, stats, template, prior_correction, model_id, device, dtype, max_length
    Network: host, port, api_key (or $BEHAVIORLM_API_KEY)
    Batching: max_batch, max_wait_ms, max_queue, request_timeout_s, retry_after_s, shutdown_timeout_s
    Limits: max_body_bytes, max_history_events, max_batch_requests
    """

    model: str = field(metadata={"help": "A merged export (with behaviorlm.json) or a base model (with --stats)."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (peft) on top of --model."})
    stats: str | None = field(
        default=None,
        metadata={"help": "stats.json of the tuning dataset; needed when --model has no behaviorlm.json."},
    )
    template: str | None = field(
        default=TEMPLATE_AUTO,
        metadata={"help": "LLaMA-Factory template; 'auto': behaviorlm.json's, else the default model's marker."},
    )
    prior_correction: PriorCorrectionArguments = field(
        default_factory=PriorCorrectionArguments,
        metadata={
            "help": "score - alpha * log prior; --prior-correction is its alpha (a number >= 0; unset: "
            "behaviorlm.json's, else 0). Requests may override it with their 'alpha'."
        },
    )
    model_id: str | None = field(default=None, metadata={"help": "Name in responses (default: the model folder)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Interface to bind; 0.0.0.0 exposes it to the network."})
    port: int = field(default=8000, metadata={"help": "TCP port."})
    api_key: str | None = field(
        default=None,
        metadata={"help": f"Require 'Authorization: Bearer KEY' on /v1/* (prefer ${API_KEY_ENV}: not in ps)."},
    )
    max_batch: int = field(default=8, metadata={"help": "Most samples per scorer batch."})
    max_wait_ms: float = field(default=5.0, metadata={"help": "Longest wait for a batch to fill after its first."})
    max_queue: int = field(default=256, metadata={"help": "Samples waiting at most; past it: 503 + Retry-After."})
    request_timeout_s: float = field(default=60.0, metadata={"help": "A request without an answer by then: 504."})
    retry_after_s: int = field(default=1, metadata={"help": "Retry-After of a 503."})
    shutdown_timeout_s: float = field(default=30.0, metadata={"help": "Longest wait for in-flight requests on stop."})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "Largest request body; past it: 413."})
    max_history_events: int = field(default=200, metadata={"help": "Most history events per request (413)."})
    max_batch_requests: int = field(default=64, metadata={"help": "Most requests per /v1/predict/batch (413)."})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available), cpu, cuda or cuda:N."})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16."})
    max_length: int = field(default=2048, metadata={"help": "Max prompt + answer tokens (the model's context)."})

    def __post_init__(self) -> None:
        self.prior_correction = as_prior_correction(self.prior_correction)
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be 1-65535, got {self.port}")
        for key in ("max_batch", "max_queue", "max_body_bytes", "max_history_events", "max_batch_requests"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        for key in ("max_wait_ms", "request_timeout_s", "shutdown_timeout_s"):
            v = getattr(self, key)
            if not math.isfinite(v) or v < 0 or (key != "max_wait_ms" and v == 0):
                raise ValueError(f"--{key.replace('_', '-')} must be a finite number > 0, got {v}")
        if self.retry_after_s < 0:
            raise ValueError(f"--retry-after-s must be >= 0, got {self.retry_after_s}")
        if self.max_queue < self.max_batch:
            raise ValueError(f"--max-queue ({self.max_queue}) must be >= --max-batch ({self.max_batch})")
        unused = PriorCorrectionArguments(alpha=self.prior_correction.alpha)
        if self.prior_correction != unused:
            raise ValueError(
                "--prior-correction: a server applies one alpha; head_floor, alpha_grid and choose_on choose alpha "
                "on val predictions (behaviorlm evaluate), so give only the alpha"
            )
        if self.prior_correction.is_auto:
            raise ValueError(
                "--prior-correction auto chooses alpha on val predictions, which a server does not have; give a "
                "number (or leave it out: the exported model's alpha)"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key is empty; give a key or leave it out")
