"""What the chain says to train and how: the run's `ModelDescription` turned into the training core's objects.

Both directions live here so that the operator's `run.toml` and the client read the same mapping: a field
the client cannot honour is refused by name before a run is created, and again by every client joining.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.training.distro import DistroConfig
from client.training.schedule import Constant, Cosine, Linear, Schedule

ARCHITECTURES = {"llama": 0, "deepseek": 1, "hf_auto": 2, "torchtitan": 3}
SUPPORTED_ARCHITECTURES = {"llama", "deepseek"}
DATA_TYPES = {"float32": 0, "bfloat16": 1}
OPTIMIZERS = {"adamw": 0, "distro": 1}
SELECTIONS = {"topk": 0, "shared": 1}  # DistroConfig.selection; coordinator.h SEL_*
# when a step's results are applied (coordinator.h PIPE_*): overlapped = a round trains on weights that lack the
# previous step's results (as in Psyche, with the sign look-ahead); synchronous = each step's results are
# gathered, witnessed and applied before the next step trains (no look-ahead: nothing is pending)
PIPELINES = {"overlapped": 0, "synchronous": 1}
DISTRO_KEYS = {"chunk", "topk", "decay", "quantize_1bit", "selection", "pipeline"}
LR_SCHEDULES = {"constant": 0, "linear": 1, "cosine": 2, "wsd": 3}
SUPPORTED_SCHEDULES = {"constant", "linear", "cosine"}
DATA_LOCATION_MAX = 192


class ModelUnsupported(ValueError):
    """The run asks for a model, optimizer or schedule this client cannot train."""


def _name(table: dict[str, int], value: int, what: str) -> str:
    for k, v in table.items():
        if v == value:
            return k
    raise ModelUnsupported(f"the run's {what} is {value}, which this client does not know")


@dataclass(frozen=True)
class TrainingPlan:
    architecture: str
    data_type: str
    optimizer: str
    schedule: Schedule
    distro: DistroConfig
    cold_start_warmup_steps: int
    data_location: str
    pipeline: str = "overlapped"  # PIPELINES; the runner's round order and the trainer's look-ahead follow it

    @property
    def synchronous(self) -> bool:
        return self.pipeline == "synchronous"

    @classmethod
    def from_chain(cls, m: Any) -> TrainingPlan:
        """From a decoded `ModelDescription`; raises ModelUnsupported naming the field it cannot honour."""
        arch = _name(ARCHITECTURES, int(m.architecture), "architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ModelUnsupported(f"architecture {arch!r} is not supported (this client trains"
                                   f" {', '.join(sorted(SUPPORTED_ARCHITECTURES))})")
        optimizer = _name(OPTIMIZERS, int(m.optimizer), "optimizer")
        if optimizer != "distro":
            raise ModelUnsupported(f"optimizer {optimizer!r} cannot train across clients; runs use distro")
        kind = _name(LR_SCHEDULES, int(m.lr_schedule), "lr_schedule")
        if kind not in SUPPORTED_SCHEDULES:
            raise ModelUnsupported(f"lr schedule {kind!r} needs parameters the chain does not carry")
        base = dict(base_lr=float(m.lr_base), warmup_init_lr=float(m.lr_warmup_init),
                    warmup_steps=int(m.lr_warmup_steps))
        total = max(int(m.lr_total_steps), int(m.lr_warmup_steps) + 1)
        schedule: Schedule = (Constant(**base) if kind == "constant" else
                              Linear(**base, final_lr=float(m.lr_final), total_steps=total) if kind == "linear" else
                              Cosine(**base, final_lr=float(m.lr_final), total_steps=total))
        try:
            # the shared draw's seed is 0 on every client: the step and the parameter name vary it, and the
            # model description carries no run seed (every client must derive the same one without talking)
            distro = DistroConfig(chunk=int(m.distro_chunk), topk=int(m.distro_topk), decay=float(m.distro_decay),
                                  quantize_1bit=bool(m.distro_quantize1bit),
                                  selection=_name(SELECTIONS, int(m.distro_selection), "distro selection"))
        except ValueError as e:
            raise ModelUnsupported(f"distro settings: {e}") from None
        location = bytes(m.data_location[:int(m.data_location_len)]).decode("utf-8", errors="replace")
        if not location:
            raise ModelUnsupported("the run names no data location (operator: `psyche run update` with [data])")
        return cls(arch, _name(DATA_TYPES, int(m.data_type), "data_type"), optimizer, schedule, distro,
                   int(m.cold_start_warmup_steps), location,
                   _name(PIPELINES, int(m.distro_pipeline), "distro pipeline"))


def model_description_fields(model: dict[str, Any], lr: dict[str, Any], distro: dict[str, Any],
                             data_location: str) -> dict[str, Any]:
    """run.toml's [model], [lr], [distro] and data location as `ModelDescription` fields (checked)."""
    def pick(table: dict[str, int], value: Any, field: str, supported: set[str] | None = None) -> int:
        if value not in table or (supported is not None and value not in supported):
            allowed = sorted(supported or table)
            raise ValueError(f"{field} = {value!r}: must be one of {', '.join(allowed)}")
        return table[value]

    unknown = sorted(set(distro) - DISTRO_KEYS)
    if unknown:  # a misspelt `selection` would silently train with top-k
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in [distro];"
                         f" known: {', '.join(sorted(DISTRO_KEYS))}")
    loc = data_location.encode()
    if not 0 < len(loc) <= DATA_LOCATION_MAX:
        raise ValueError(f"data location must be 1..{DATA_LOCATION_MAX} bytes, got {len(loc)}")
    return dict(
        architecture=pick(ARCHITECTURES, model.get("arch", "llama"), "model.arch", SUPPORTED_ARCHITECTURES),
        data_type=pick(DATA_TYPES, model.get("dtype", "float32"), "model.dtype"),
        optimizer=OPTIMIZERS["distro"],
        lr_schedule=pick(LR_SCHEDULES, lr.get("schedule", "cosine"), "lr.schedule", SUPPORTED_SCHEDULES),
        cold_start_warmup_steps=int(lr.get("cold_start_warmup_steps", 0)),
        lr_base=float(lr["base"]), lr_warmup_init=float(lr.get("warmup_init", 0.0)),
        lr_final=float(lr.get("final", 0.0)), lr_warmup_steps=int(lr.get("warmup_steps", 0)),
        lr_total_steps=int(lr.get("total_steps", 1)),
        distro_decay=float(distro.get("decay", 0.99)), distro_chunk=int(distro.get("chunk", 16)),
        distro_topk=int(distro.get("topk", 1)), distro_quantize1bit=int(bool(distro.get("quantize_1bit", True))),
        distro_selection=pick(SELECTIONS, distro.get("selection", "topk"), "distro.selection"),
        distro_pipeline=pick(PIPELINES, distro.get("pipeline", "overlapped"), "distro.pipeline"),
        data_location_len=len(loc), data_location=list(loc) + [0] * (DATA_LOCATION_MAX - len(loc)),
    )
