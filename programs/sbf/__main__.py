"""python -m programs.sbf a.o [b.o ...] -o out.so"""
import argparse
import sys
from pathlib import Path

from programs.sbf import LinkError, link_files


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m programs.sbf", description="Link BPF objects into an SBF .so")
    ap.add_argument("objects", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    try:
        size = link_files(args.objects, args.output)
    except (LinkError, OSError) as e:
        print(f"sbf-link: error: {e}", file=sys.stderr)
        return 1
    print(f"sbf-link: wrote {args.output} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
