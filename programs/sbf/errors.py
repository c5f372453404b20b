"""The one error type the linker raises; its message always names where the problem is."""


class LinkError(Exception):
    """A refusal to link: the message names the object file, section and byte offset when known."""

    def __init__(self, message: str, *, obj: str | None = None, section: str | None = None,
                 offset: int | None = None) -> None:
        where = []
        if obj is not None:
            where.append(obj)
        if section is not None:
            where.append(f"section {section}")
        if offset is not None:
            where.append(f"offset 0x{offset:x}")
        self.obj, self.section, self.offset = obj, section, offset
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
