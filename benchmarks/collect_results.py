"""Assemble benchmarks/RESULTS.md from the per-script tables in benchmarks/results/*.md.

Usage: python benchmarks/collect_results.py   (after running any of the benchmark scripts)
"""

from __future__ import annotations

import pathlib
import re

HERE = pathlib.Path(__file__).parent
SECTIONS = [
    "nequip_speed",
    "md_throughput",
    "md_host_loop",
    "train_accuracy",
    "mace_speed",
    "compare_mace_torch",
    "model_family",
    "model_family_notes",
    "active_learning",
    "reaction_speed",
    "committee_cost",
    "data_parallel",
    "large_systems",
    "large_systems_plan",
    "gpu_check",
]


def demote(text: str, top: int = 2) -> str:
    """Shift markdown headings so the section's highest heading has level ``top``."""
    levels = [len(m.group(1)) for m in re.finditer(r"^(#+) ", text, flags=re.M)]
    if not levels:
        return text
    shift = top - min(levels)
    return re.sub(
        r"^(#+) ", lambda m: "#" * (len(m.group(1)) + shift) + " ", text, flags=re.M
    )


def main() -> None:
    header = (HERE / "results" / "HEADER.md").read_text().strip()
    parts = [header]
    for name in SECTIONS:
        path = HERE / "results" / f"{name}.md"
        if path.exists():
            parts.append(demote(path.read_text().strip()))
    (HERE / "RESULTS.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} ({len(parts) - 1} sections)")


if __name__ == "__main__":
    main()
