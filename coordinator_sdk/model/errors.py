"""Errors of the model, one class per rule, named as the program names its custom errors."""
from __future__ import annotations


class ModelError(Exception):
    """Base of every refusal; `name` is the program's error name for the same refusal."""
    name = "ModelError"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.name}: {detail}" if detail else self.name)


def _error(name: str) -> type[ModelError]:
    return type(name, (ModelError,), {"name": name})


Halted = _error("Halted")
NotHalted = _error("NotHalted")
AlreadyInitialized = _error("AlreadyInitialized")
RunFinished = _error("RunFinished")
InvalidConfig = _error("InvalidConfig")
InvalidProgress = _error("InvalidProgress")
NotPaused = _error("NotPaused")
ClientsFull = _error("ClientsFull")
MoreClientsThanBatches = _error("MoreClientsThanBatches")
SignerNotAClient = _error("SignerNotAClient")
WrongState = _error("WrongState")
DuplicateWitness = _error("DuplicateWitness")
WitnessNotElected = _error("WitnessNotElected")
WitnessesFull = _error("WitnessesFull")
HealthCheckTooEarly = _error("HealthCheckTooEarly")
ClientIsHealthy = _error("ClientIsHealthy")
NotAnEpochClient = _error("NotAnEpochClient")
ArithmeticOverflow = _error("ArithmeticOverflow")
StaleRound = _error("StaleRound")
StringTooLong = _error("StringTooLong")
ClientNotHealthy = _error("ClientNotHealthy")
P2pKeyTaken = _error("P2pKeyTaken")
ParticipantOutOfRange = _error("ParticipantOutOfRange")
WrongPointsAccount = _error("WrongPointsAccount")
NotAVerifier = _error("NotAVerifier")
DuplicateVerdict = _error("DuplicateVerdict")
WrongTrainer = _error("WrongTrainer")
InvalidArgument = _error("InvalidArgument")
