"""``dsp pacing-sim``: a simulated day of pacing, as a table of plan against spend and a PNG.

``dsp/cli.py`` wires it with ``add_pacing_command(commands)``; the subcommand's handler is
``args.run(args)``. ``python -m dsp.budget.pacing_cli`` runs it on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsp.budget.simulation import DayConfig, DayResult, simulate_day
from dsp.campaigns.model import Pacing

COMMAND = "pacing-sim"


def add_pacing_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``pacing-sim`` to an ``argparse`` subparsers object (``add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="simulate a day of budget pacing: hourly plan against spend, and a PNG",
        description=(
            "Runs one day of a campaign on an accelerated clock against synthetic traffic "
            "that follows a diurnal curve (shifted and noisier than the forecast the plan "
            "uses) and prints the hourly plan against the actual spend."
        ),
    )
    defaults = DayConfig()
    parser.add_argument("--png", type=Path, help="write the chart of the day to this PNG file")
    parser.add_argument(
        "--pacing", choices=[p.value for p in Pacing], default=defaults.pacing.value
    )
    parser.add_argument("--budget-micros", type=int, default=defaults.budget_micros)
    parser.add_argument("--cpm-micros", type=int, default=defaults.cpm_micros, help="our bid")
    parser.add_argument(
        "--traffic",
        type=float,
        default=defaults.traffic_multiple,
        help="what the day's traffic could buy at full bidding, in budgets",
    )
    parser.add_argument(
        "--shift-hours",
        type=float,
        default=defaults.traffic_shift_h,
        help="how far the day's traffic lags the forecast",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.set_defaults(run=run_pacing_sim)
    return parser


def run_pacing_sim(args: argparse.Namespace) -> int:
    """Run the simulation the parsed arguments describe; print the table, write the PNG."""
    try:
        config = DayConfig(
            budget_micros=args.budget_micros,
            cpm_micros=args.cpm_micros,
            pacing=Pacing(args.pacing),
            traffic_multiple=args.traffic,
            traffic_shift_h=args.shift_hours,
            seed=args.seed,
        )
    except ValueError as error:
        print(f"dsp {COMMAND}: {error}", file=sys.stderr)
        return 2
    result = simulate_day(config)
    print(format_day(result))
    if args.png is not None:
        plot_day(result, args.png)
        print(f"chart written to {args.png}")
    return 0


def _usd(micros: float) -> str:
    return f"{micros / 1_000_000:,.2f}"


def format_day(result: DayResult) -> str:
    """The hourly plan against the spend, one line an hour, and the day's figures."""
    config = result.config
    lines = [
        f"{config.pacing.value} pacing, daily budget ${_usd(config.budget_micros)}, "
        f"bid CPM ${_usd(config.cpm_micros)}, traffic {config.traffic_multiple:g}x the budget, "
        f"seed {config.seed}",
        f"{'hour':>4}  {'plan $':>10}  {'spent $':>10}  {'error':>7}  {'traffic $':>10}  bid p",
    ]
    for hour in result.hours:
        mark = " " if hour.enough_traffic else "*"
        lines.append(
            f"{hour.hour:>4}  {_usd(hour.plan_micros):>10}  {_usd(hour.spent_micros):>10}  "
            f"{hour.error:>+7.1%}{mark} {_usd(hour.potential_micros):>10}  {hour.probability:.3f}"
        )
    lines += [
        f"{'day':>4}  {_usd(config.budget_micros):>10}  {_usd(result.spent_micros):>10}",
        f"spent {result.spent_share:.2%} of the daily budget; largest hourly deviation from plan "
        f"{result.worst_error():.1%} (hours with enough traffic)",
    ]
    if not all(hour.enough_traffic for hour in result.hours):
        lines.append("* an hour whose traffic could not buy 1.25x its plan: not held to it")
    return "\n".join(lines)


def plot_day(result: DayResult, path: Path) -> None:
    """Bars of the hourly spend against the plan, and the bid probability over the day."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hours = [h.hour for h in result.hours]
    edges = [*hours, 24]
    figure = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    spent = [h.spent_micros / 1e6 for h in result.hours]
    axes.bar(hours, spent, width=0.9, align="edge", color="#4c72b0", label="spent")
    plan = [h.plan_micros / 1e6 for h in result.hours]
    traffic = [h.potential_micros / 1e6 for h in result.hours]
    axes.step(edges, [*plan, plan[-1]], where="post", color="#dd8452", linewidth=2, label="plan")
    axes.step(
        edges, [*traffic, traffic[-1]], where="post", color="#999999", linewidth=1,
        linestyle="--", label="traffic at full bidding",
    )  # fmt: skip
    axes.set_xlim(0, 24)
    axes.set_xticks(range(0, 25, 3))
    axes.set_xlabel("hour of the advertiser's day")
    axes.set_ylabel("USD per hour")
    probability = axes.twinx()
    probability.plot(result.step_hours, result.step_probability, color="#55a868", linewidth=0.8,
                     label="bid probability")  # fmt: skip
    probability.set_ylim(0, 1.05)
    probability.set_ylabel("bid probability")
    handles = axes.get_legend_handles_labels()[0] + probability.get_legend_handles_labels()[0]
    axes.legend(handles=handles, loc="upper left")
    config = result.config
    axes.set_title(
        f"{config.pacing.value} pacing: spent {result.spent_share:.1%} of "
        f"${_usd(config.budget_micros)}, worst hour {result.worst_error():.1%} off plan"
    )
    figure.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dsp.budget.pacing_cli [options]``: the command without ``dsp``."""
    parser = argparse.ArgumentParser(prog="dsp")
    add_pacing_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    return run_pacing_sim(args)


if __name__ == "__main__":
    raise SystemExit(main())
