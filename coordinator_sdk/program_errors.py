"""Program errors as Python exceptions named after the program's own error names.

Why: a client that catches `WitnessNotElected` reads better and breaks less than one that compares
`InstructionErrorCustom(6012)`; the mapping comes from the IDL's `errors` list so it cannot drift."""
from __future__ import annotations

import re
from collections.abc import Iterable


class TransactionFailed(Exception):
    """A transaction failed for a reason that is not one of the program's named errors."""

    def __init__(self, message: str, err: object = None, logs: list[str] | None = None) -> None:
        self.err, self.logs = err, list(logs or [])
        super().__init__(message + (("\n  " + "\n  ".join(self.logs)) if self.logs else ""))


class ProgramError(TransactionFailed):
    """Base of every named program error; subclasses are created per error name (e.g. WitnessNotElected)."""
    code: int = -1
    error_name: str = "ProgramError"
    error_msg: str = ""

    def __init__(self, instruction_index: int, logs: list[str] | None = None) -> None:
        self.instruction_index = instruction_index
        super().__init__(f"{self.error_name} (code {self.code}) in instruction {instruction_index}: {self.error_msg}",
                         {"InstructionError": [instruction_index, {"Custom": self.code}]}, logs)


_CUSTOM = re.compile(r"Custom\D*(\d+)")
_INDEX = re.compile(r"InstructionError\D*(\d+)")


_CLASSES: dict[tuple[int, str], type[ProgramError]] = {}


def error_class(code: int, name: str, msg: str = "") -> type[ProgramError]:
    """One class per (code, name) in the whole process, so `except WitnessNotElected` works whichever
    ErrorMap raised it."""
    key = (code, name)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (ProgramError,), {"code": code, "error_name": name, "error_msg": msg})
    return _CLASSES[key]


class ErrorMap:
    """Custom error code -> exception class, from an IDL `errors` list of {code, name, msg}."""

    def __init__(self, errors: Iterable[dict]) -> None:
        self.by_code: dict[int, type[ProgramError]] = {
            int(e["code"]): error_class(int(e["code"]), e["name"], e.get("msg", "")) for e in errors}

    def __getitem__(self, name: str) -> type[ProgramError]:
        for cls in self.by_code.values():
            if cls.error_name == name:
                return cls
        raise KeyError(name)

    def exception_for(self, err: object, logs: list[str] | None = None) -> TransactionFailed:
        """The exception for a transaction error, in its JSON form or as a solders error object."""
        if isinstance(err, dict) and "InstructionError" in err:
            index, inner = err["InstructionError"]
            code = inner.get("Custom") if isinstance(inner, dict) else None
        else:  # solders error objects only expose their repr
            text = str(err)
            m_code, m_index = _CUSTOM.search(text), _INDEX.search(text)
            code = int(m_code.group(1)) if m_code and "InstructionError" in text else None
            index = int(m_index.group(1)) if m_index else 0
        cls = self.by_code.get(code) if code is not None else None
        if cls is not None:
            return cls(int(index), logs)
        return TransactionFailed(f"transaction failed: {err}", err, logs)
