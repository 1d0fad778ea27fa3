"""Table I and its bar chart from an evaluation's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def success_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per planner: success rate [%] per task and the average over tasks (the paper's layout)."""
    rows = []
    for planner in results["planners"]:
        rates = {}
        for task in results["tasks"]:
            cell = planner["tasks"].get(task, {})
            attempts = cell.get("attempts", 0)
            rates[task] = 100.0 * cell.get("verified", 0) / attempts if attempts else None
        known = [r for r in rates.values() if r is not None]
        rows.append({"label": planner["label"], "rates": rates, "average": sum(known) / len(known) if known else None})
    return rows


def markdown(results: dict[str, Any]) -> str:
    tasks = results["tasks"]
    lines = [
        "| planner | " + " | ".join(tasks) + " | average |",
        "|---|" + "---:|" * (len(tasks) + 1),
    ]
    from llm_trainer.datagen.run_store import seed_for

    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    n = results["episodes_per_task"]
    seeds = ", ".join(f"{t} {seed_for(results['split'], results['seed'], 0, t)}.." for t in tasks[:2])
    for row in success_table(results):
        lines.append(
            f"| {row['label']} | " + " | ".join(fmt(row["rates"][t]) for t in tasks) + f" | {fmt(row['average'])} |"
        )
    lines += [
        "",
        f"Success rate [%] on {results['episodes_per_task']} {results['split']}-split episodes per task "
        f"(slots 0..{n - 1} of each task's own seeds: {seeds}; scene state: {results['state']}). Per planner:",
        "",
        "| planner | spec | episodes | episodes/min | wall time [s] | failure kinds |",
        "|---|---|---:|---:|---:|---|",
    ]
    for p in results["planners"]:
        spec = p["spec"]
        text = spec["backend"] + (
            ":" + ",".join(f"{k}={v}" for k, v in spec["settings"].items()) if spec["settings"] else ""
        )
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(p["failure_kinds"].items())) or "-"
        speed, wall = f"{p['episodes_per_minute']:.1f}", f"{p['wall_time_s']:.0f}"
        lines.append(f"| {p['label']} | `{text}` | {p['episodes']} | {speed} | {wall} | {kinds} |")
    return "\n".join(lines) + "\n"


def bar_chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = success_table(results)
    groups = [*results["tasks"], "average"]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 3.6), dpi=120)
    for k, row in enumerate(rows):
        values = [row["rates"].get(t) for t in results["tasks"]] + [row["average"]]
        xs = [i + (k - (len(rows) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [v or 0.0 for v in values], width=width, label=row["label"])
    ax.set_xticks(range(len(groups)), [g.replace("_", "\n") for g in groups], fontsize=8)
    ax.set_ylabel("success [%]")
    ax.set_ylim(0, 105)
    ax.set_title(f"{results['split']} split, {results['episodes_per_task']} episodes per task", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], out: Path) -> dict[str, str]:
    table = out / "results.md"
    table.write_text(markdown(results), encoding="utf-8")
    chart = bar_chart(results, out / "success.png")
    return {"table": str(table), "chart": str(chart)}
