#!/usr/bin/env python3
"""Curves of a quality experiment, as SVG files, from the collected file(s) of `bench/quality gutenberg`.

    bench/quality_plots.py PREFIX.jsonl... [--out docs/quality] [--smooth N] [--from 0.25]

For every model in the files it writes into --out:
    <model>-val-loss.svg        validation loss during training (evals.jsonl's `current` points) against training
                                tokens, one line per mode: the mean over seeds, with a band from the lowest to the
                                highest seed
    <model>-train-loss.svg      training loss (metrics.jsonl), each seed's a moving average over --smooth steps
                                (default 2% of the steps), then mean and min-max band over seeds as above
    <model>-final-val-loss.svg  the final validation loss (the JSON summary's val_loss_adapters) per mode: each seed a
                                dot, the mean ± std a bar
The y-range of the curves leaves out their first --from share of the tokens (default 25%), where losses fall steeply,
so the differences between modes stay visible; lines leave the chart at the top there. Plain SVG, no dependencies.
"""
import argparse
import json
import math
import os
import statistics

# The run page's chart style (api/src/main/resources/public/charts.js): grey axes and grid, 11 px labels.
AXIS, GRID, TEXT = "#98a2b3", "#eaecf0", "#475467"
PALETTE = ["#101828", "#f79009", "#2e90fa", "#7a5af8", "#12b76a", "#ee46bc", "#f04438", "#667085", "#0e9384"]
PLOT_W, H, LEFT, TOP, BOTTOM = 480, 400, 64, 34, 46


def read(paths):
    records = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.rstrip("\n").endswith("}")]
    return records


def mode_order(records):
    """Modes in the order the experiment lists them (its meta lines), then any other in the order its runs appear."""
    order = []
    listed = [m for r in records if r["kind"] == "meta" for m in r.get("modes", [])]
    for mode in listed + [r["mode"] for r in records if r["kind"] == "run"]:
        if mode not in order:
            order.append(mode)
    return order


def by_run(records, kind):
    """{(model, mode): {seed: [record, ...]}} of one kind; a step trained twice (a resume) keeps its last line."""
    runs = {}
    for r in records:
        if r["kind"] == kind:
            runs.setdefault((r["model"], r["mode"]), {}).setdefault(r["seed"], {})[(r["step"], r.get("form"))] = r
    return {key: {seed: [lines[k] for k in sorted(lines, key=lambda k: k[0])] for seed, lines in seeds.items()}
            for key, seeds in runs.items()}


def tokens_per_step(run):
    training = run["spec"]["training"]
    return training["batchSize"] * training.get("gradAccum", 1) * run["spec"]["model"]["seqLen"]


def moving_average(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def bands(per_seed):
    """Per-seed series {x: y} → [(x, mean, lo, hi)] over the x every seed has."""
    common = set.intersection(*(set(s) for s in per_seed))
    return [(x, statistics.mean(s[x] for s in per_seed), min(s[x] for s in per_seed), max(s[x] for s in per_seed))
            for x in sorted(common)]


def nice_ticks(lo, hi, count=5):
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def human(n):
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:g}{suffix}"
    return f"{n:g}"


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_width(text):
    """About how wide 11 px sans-serif text is: enough to keep the legend inside the picture."""
    return 6.2 * len(text)


class Chart:
    """One SVG chart: a plot area with axes, grid and ticks, a title, axis labels and, right of it, a legend as wide
    as its longest label."""

    def __init__(self, title, x_label, y_label, x_range, y_range, labels):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.right = LEFT + PLOT_W
        width = self.right + 50 + max(text_width(label) for label in labels)
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {H}" width="{width:.0f}" '
                      f'height="{H}" font-family="sans-serif" font-size="11">',
                      f'<rect width="{width:.0f}" height="{H}" fill="#fff"/>',
                      f'<clipPath id="plot"><rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" '
                      f'height="{H - TOP - BOTTOM}"/></clipPath>',
                      f'<text x="{LEFT}" y="20" font-size="13" font-weight="bold" fill="{TEXT}">{esc(title)}</text>']
        self.legend = []
        self.axes(x_label, y_label)

    def sx(self, x):
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * PLOT_W

    def sy(self, y):
        return H - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def axes(self, x_label, y_label):
        right, bottom = self.right, H - BOTTOM
        for y in nice_ticks(self.y0, self.y1):
            self.parts.append(f'<line x1="{LEFT}" x2="{right}" y1="{self.sy(y):.1f}" y2="{self.sy(y):.1f}" '
                              f'stroke="{GRID}"/>')
            self.parts.append(f'<text x="{LEFT - 6}" y="{self.sy(y) + 4:.1f}" text-anchor="end" fill="{TEXT}">'
                              f'{y:g}</text>')
        for x in nice_ticks(self.x0, self.x1):
            self.parts.append(f'<text x="{self.sx(x):.1f}" y="{bottom + 16}" text-anchor="middle" fill="{TEXT}">'
                              f'{esc(human(x))}</text>')
        self.parts.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>')
        self.parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS}"/>')
        self.parts.append(f'<text x="{(LEFT + right) / 2}" y="{H - 8}" text-anchor="middle" fill="{TEXT}">'
                          f'{esc(x_label)}</text>')
        self.parts.append(f'<text transform="translate(16 {(TOP + bottom) / 2}) rotate(-90)" text-anchor="middle" '
                          f'fill="{TEXT}">{esc(y_label)}</text>')

    def series(self, label, color, dashed, points):
        """points: [(x, mean, lo, hi)]: a line at the mean over a translucent lowest-to-highest band."""
        upper = " ".join(f"{self.sx(x):.1f},{self.sy(hi):.1f}" for x, _, _, hi in points)
        lower = " ".join(f"{self.sx(x):.1f},{self.sy(lo):.1f}" for x, _, lo, _ in reversed(points))
        self.parts.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.15" stroke="none" '
                          f'clip-path="url(#plot)"/>')
        line = " ".join(f"{self.sx(x):.1f},{self.sy(mean):.1f}" for x, mean, _, _ in points)
        dash = ' stroke-dasharray="6 3"' if dashed else ""
        self.parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.8"{dash} '
                          f'clip-path="url(#plot)"/>')
        self.legend.append((label, color, dash))

    def svg(self):
        x = self.right + 14
        for i, (label, color, dash) in enumerate(self.legend):
            y = TOP + 8 + 18 * i
            self.parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"'
                              f'{dash}/>')
            self.parts.append(f'<text x="{x + 24}" y="{y + 4}" fill="{TEXT}">{esc(label)}</text>')
        return "\n".join(self.parts + ["</svg>"]) + "\n"


def y_range(curves, x_from):
    """From the lowest to the highest value of the curves past x_from (bands included), padded by 5%."""
    values = [v for points in curves for x, _, lo, hi in points if x > x_from for v in (lo, hi)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.01 or 1.0
    return lo - pad, hi + pad


def curve_chart(title, y_label, curves, style, skip):
    """One line per mode; style: mode -> (label, colour, dashed)."""
    x_max = max(points[-1][0] for points in curves.values())
    chart = Chart(title, "training tokens", y_label, (0, x_max), y_range(curves.values(), skip * x_max),
                  [style[mode][0] for mode in curves])
    for mode, points in curves.items():
        chart.series(*style[mode], points)
    return chart.svg()


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def final_chart(title, finals, style):
    """One row per mode: every seed's final loss a dot, the mean a tick and ± std a bar."""
    spread = [mean_std(seeds) for seeds in finals.values()]
    values = [v for seeds in finals.values() for v in seeds] + [m + d * s for m, s in spread for d in (-1, 1)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.01 or 1.0
    height = TOP + BOTTOM + 26 * len(finals)
    left = 30 + max(text_width(style[mode][0]) for mode in finals)
    right = left + PLOT_W
    width = right + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height}" width="{width:.0f}" '
             f'height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width:.0f}" height="{height}" fill="#fff"/>',
             f'<text x="{LEFT}" y="20" font-size="13" font-weight="bold" fill="{TEXT}">{esc(title)}</text>']
    x0, x1 = lo - pad, hi + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (right - left)

    bottom = height - BOTTOM
    for x in nice_ticks(x0, x1):
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{TOP}" y2="{bottom}" stroke="{GRID}"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{bottom + 16}" text-anchor="middle" fill="{TEXT}">{x:g}</text>')
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>')
    parts.append(f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle" fill="{TEXT}">'
                 f'final validation loss (nats per token)</text>')
    for i, (mode, seeds) in enumerate(finals.items()):
        y = TOP + 13 + 26 * i
        mean, std = mean_std(seeds)
        label, color, _ = style[mode]
        parts.append(f'<text x="{left - 10}" y="{y + 4}" text-anchor="end" fill="{TEXT}">{esc(label)}</text>')
        parts.append(f'<line x1="{sx(mean - std):.1f}" x2="{sx(mean + std):.1f}" y1="{y}" y2="{y}" stroke="{color}" '
                     f'stroke-width="6" stroke-opacity="0.35"/>')
        parts.append(f'<line x1="{sx(mean):.1f}" x2="{sx(mean):.1f}" y1="{y - 8}" y2="{y + 8}" stroke="{color}" '
                     f'stroke-width="2"/>')
        for v in seeds:
            parts.append(f'<circle cx="{sx(v):.1f}" cy="{y}" r="3" fill="{color}"/>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="collected .jsonl files of `bench/quality gutenberg`")
    parser.add_argument("--out", default="docs/quality", help="folder for the SVG files (default docs/quality)")
    parser.add_argument("--smooth", type=int, help="training-loss moving average, in steps (default 2%% of them)")
    parser.add_argument("--from", dest="skip", type=float, default=0.25,
                        help="share of the tokens left out of the curves' y-range (default 0.25)")
    args = parser.parse_args()
    records = read(args.files)
    order = mode_order(records)
    runs = {}
    for r in records:
        if r["kind"] == "run" and r["exit"] == 0:
            runs[(r["model"], r["mode"], r["seed"])] = r
    # Colours follow the experiment's order; modes with adapters are dashed.
    style = {}
    for i, mode in enumerate(order):
        run = next((r for (_, m, _), r in runs.items() if m == mode), None)
        if run is not None:
            style[mode] = (run["label"], PALETTE[i % len(PALETTE)], run["training"]["adapter_rank"] is not None)
    steps, evals = by_run(records, "step"), by_run(records, "eval")
    os.makedirs(args.out, exist_ok=True)
    for model in sorted({m for m, _, _ in runs}):
        modes = [mode for mode in order if any(k[:2] == (model, mode) for k in runs)]
        val, train, finals = {}, {}, {}
        for mode in modes:
            seeds = {s: r for (m, mo, s), r in runs.items() if (m, mo) == (model, mode)}
            per_step = {s: tokens_per_step(r) for s, r in seeds.items()}
            val[mode] = bands([{e["step"] * per_step[s]: e["val_loss"] for e in evals.get((model, mode), {})[s]
                                if e["form"] == "current"} for s in seeds])
            total = max(r["summary"]["steps"] for r in seeds.values())
            window = args.smooth or max(1, total // 50)
            train[mode] = bands([dict(zip([line["step"] * per_step[s] for line in lines],
                                          moving_average([line["loss"] for line in lines], window)))
                                 for s, lines in steps.get((model, mode), {}).items() if s in seeds])
            finals[mode] = [r["summary"]["val_loss_adapters"] for r in seeds.values()]
        n_seeds = max(len(v) for v in finals.values())
        written = {
            f"{model}-val-loss.svg": curve_chart(f"{model}: validation loss (mean over up to {n_seeds} seeds, band "
                                                 f"min-max)", "validation loss", val, style, args.skip),
            f"{model}-train-loss.svg": curve_chart(f"{model}: training loss (moving average, mean over seeds, band "
                                                   f"min-max)", "training loss", train, style, args.skip),
            f"{model}-final-val-loss.svg": final_chart(f"{model}: final validation loss (dots: seeds; bar: mean ± "
                                                       f"std)", finals, style),
        }
        for name, svg in written.items():
            with open(os.path.join(args.out, name), "w") as f:
                f.write(svg)
            print(f"written: {os.path.join(args.out, name)}")


if __name__ == "__main__":
    main()
