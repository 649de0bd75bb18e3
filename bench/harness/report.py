"""Derived figures (ratios, targets) and the printed table."""

from __future__ import annotations

from typing import Any

BUSY_WARNING_PERCENT = 20.0

START_BASELINE_PER_SECOND = 950.0
"""W1's single start rate on the 2-core benchmark machine before starts were gathered into shared statements."""

TARGETS = {
    "w1_ratio_to_ceiling": (">=", 1.0),
    "start_per_second": (">=", 3 * START_BASELINE_PER_SECOND),
    "batch_start_per_second": (">=", 20_000.0),
    "w2_p50_ms": ("<=", 5.0),
    "w2_p99_ms": ("<=", 20.0),
    "w3_p99_ms": ("<=", 50.0),
    "w3_max_ms": ("<=", 200.0),
    "w4_ratio_to_w1": (">=", 0.8),
    "worker_peak_rss_mb": ("<=", 100.0),
    "f1_ratio_to_w1": (">=", 0.8),
    "f2_ratio_to_w1": (">=", 0.8),
    "f3_p50_ms": ("<=", 5.0),
    "f3_p99_ms": ("<=", 20.0),
    "s1_ran_twice": ("<=", 0.0),
    "s2_wal_ratio": ("<=", 2.0),
    "o1_not_started_once": ("<=", 0.0),
    "o1_lateness_p99_ms": ("<=", 50.0),
    "o2_ratio_to_idle": (">=", 0.8),
    "c1_worst_p95_ms": ("<=", 100.0),
    "o3_ratio_to_w1": (">=", 0.7),
}


def matched_connections(workers: int, measured: list[int]) -> int:
    """The ceiling's connection count that matches ``workers`` worker processes.

    A worker commits on one connection at a time (its group committer flushes one batch after another) while its
    claim loop works on a second, so ``workers`` processes keep about ``2 x workers`` connections busy; the
    largest measured count not above that is the match (2 for one worker, 4 for two).
    """
    fitting = [count for count in measured if count <= 2 * workers]
    return max(fitting) if fitting else min(measured)


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios to the ceiling and to W1, the peak worker memory, and each target with whether it is met."""
    psycopg = {int(count): rate for count, rate in results["ceiling"]["psycopg"].items()}
    pgbench = {int(count): rate for count, rate in (results["ceiling"]["pgbench"] or {}).items() if rate}
    measured = sorted(psycopg)
    w1 = results["w1"]["runs"]
    for workers_text, run in w1.items():
        connections = matched_connections(int(workers_text), measured)
        run["ceiling_connections"] = connections
        run["ceiling_commits_per_second"] = psycopg[connections]
        run["ratio_to_ceiling"] = _ratio(run["steps_per_second"], psycopg[connections])
        run["ratio_to_best_ceiling"] = _ratio(run["steps_per_second"], max(psycopg.values()))
        run["ratio_to_pgbench"] = _ratio(run["steps_per_second"], pgbench.get(connections))
    best_workers, best = max(w1.items(), key=lambda item: item[1]["steps_per_second"] or 0)
    results["w1"]["best"] = {
        "workers": int(best_workers),
        "steps_per_second": best["steps_per_second"],
        "ratio_to_ceiling": best["ratio_to_ceiling"],
        "ratio_to_best_ceiling": best["ratio_to_best_ceiling"],
        "ratio_to_pgbench": best["ratio_to_pgbench"],
    }
    for workers_text, run in results["w4"]["runs"].items():
        run["ratio_to_w1"] = _ratio(run["steps_per_second"], w1[workers_text]["steps_per_second"])
    results["w4"]["ratio_to_w1"] = min(run["ratio_to_w1"] for run in results["w4"]["runs"].values())
    for workload in ("f1", "f2"):
        run = results[workload]
        connections = matched_connections(run["workers"], measured)
        run["ceiling_connections"] = connections
        run["ratio_to_ceiling"] = _ratio(run["steps_per_second"], psycopg[connections])
        run["ratio_to_pgbench"] = _ratio(run["steps_per_second"], pgbench.get(connections))
        same_workers = w1.get(str(run["workers"]))
        run["ratio_to_w1"] = _ratio(run["steps_per_second"], same_workers["steps_per_second"] if same_workers else None)
    rss = [
        value
        for run in [*w1.values(), *results["w4"]["runs"].values()]
        for each in run.get("rounds", [run])
        for value in each["worker_peak_rss_mb"]
    ]
    results["memory"] = {"worker_peak_rss_mb": max((value for value in rss if value is not None), default=None)}
    starts = sorted(each["start_instances_per_second"] for run in w1.values() for each in run["rounds"])
    results["w1"]["start_per_second_median"] = starts[(len(starts) - 1) // 2] if starts else None
    keyed = results["o3"]
    keyed["ratio_to_w1"] = _ratio(keyed["steps_per_second"], w1["1"]["steps_per_second"] if "1" in w1 else None)
    scale = results["s1"]
    scale["start_ratio_to_one_server"] = _ratio(
        scale["start"]["instances_per_second"], results["w1"]["start_per_second_median"]
    )
    for workers_text, run in w1.items():
        scale[f"ratio_to_w1_{workers_text}_workers"] = _ratio(scale["steps_per_second"], run["steps_per_second"])
    figures = {
        "w1_ratio_to_ceiling": results["w1"]["best"]["ratio_to_ceiling"],
        "start_per_second": results["w1"]["start_per_second_median"],
        "batch_start_per_second": results["batch_starts"]["instances_per_second"],
        "w2_p50_ms": results["w2"]["p50_ms"],
        "w2_p99_ms": results["w2"]["p99_ms"],
        "w3_p99_ms": results["w3"]["p99_ms"],
        "w3_max_ms": results["w3"]["max_ms"],
        "w4_ratio_to_w1": results["w4"]["ratio_to_w1"],
        "worker_peak_rss_mb": results["memory"]["worker_peak_rss_mb"],
        "f1_ratio_to_w1": results["f1"]["ratio_to_w1"],
        "f2_ratio_to_w1": results["f2"]["ratio_to_w1"],
        "f3_p50_ms": results["f3"]["p50_ms"],
        "f3_p99_ms": results["f3"]["p99_ms"],
        "s1_ran_twice": sum(scale["ran_twice"].values()),
        "s2_wal_ratio": results["s2"]["ratio"],
        "o1_not_started_once": results["o1"]["nominal_times"] - results["o1"]["started_once"],
        "o1_lateness_p99_ms": results["o1"]["lateness_p99_ms"],
        "o2_ratio_to_idle": results["o2"]["ratio_to_idle"],
        "c1_worst_p95_ms": results["c1"]["worst_p95_ms"],
        "o3_ratio_to_w1": results["o3"]["ratio_to_w1"],
    }
    results["targets"] = {
        name: {"value": figures[name], "target": f"{op} {limit:g}", "met": _met(figures[name], op, limit)}
        for name, (op, limit) in TARGETS.items()
    }
    return results


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 3)


def _met(value: float | None, op: str, limit: float) -> bool | None:
    if value is None:
        return None
    return value >= limit if op == ">=" else value <= limit


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _ceiling_cell(run: dict[str, Any]) -> str:
    if run.get("ratio_to_ceiling") is None:
        return "—"
    return f"{run['ratio_to_ceiling']:.2f}({run['ceiling_connections']})"


def table(results: dict[str, Any]) -> str:
    """The run's figures as a plain-text table."""
    machine = results["machine"]
    pg = machine["postgres"]
    ceiling = results["ceiling"]
    counts = list(ceiling["psycopg"])
    lines = [
        f"Postgit benchmark ({results['mode']}) — {machine['cpu_count']} cores, {machine['memory_gib']} GiB, "
        f"PostgreSQL {pg['server_version']}{' (embedded)' if pg['embedded'] else ''}, "
        f"shared_buffers {pg['shared_buffers']}, synchronous_commit {pg['synchronous_commit']}",
    ]
    busy = machine.get("cpu_busy_percent_before_start")
    if busy is not None and busy > BUSY_WARNING_PERCENT:
        lines.append(
            f"WARNING: the CPUs were {busy:.0f}% busy before the run started (load average "
            f"{machine['load_average_at_start'][0]}): other work skews every figure"
        )
    lines += [
        "",
        "ceiling, commits/s (median of 3 slices)" + "".join(f"{c + ' conn':>12}" for c in counts),
        "  psycopg (async, 1 process)            " + "".join(f"{_n(ceiling['psycopg'][c]):>12}" for c in counts),
    ]
    if ceiling.get("pgbench"):
        rates = "".join(f"{_n(ceiling['pgbench'].get(c)):>12}" for c in counts)
        lines.append("  pgbench -M prepared                   " + rates)
    lines += [
        "",
        "throughput: all instances started first, then worked off (W1 / W4: Sequence of 3 Noops; F1: ForEach; "
        "F2: Parallel)",
    ]
    columns = [  # (heading, second heading line, width, value of a run)
        ("start/s", "", 9, lambda run: _n(run["start"]["instances_per_second"])),
        ("steps/s", "", 9, lambda run: _n(run["steps_per_second"])),
        ("÷ceil", "(conn)", 9, _ceiling_cell),
        ("÷pgbench", "", 9, lambda run: _n(run.get("ratio_to_pgbench"), 2)),
        ("commits", "/step", 8, lambda run: _n(run["commits_per_step"], 3)),
        ("stmts", "/step", 7, lambda run: _n(run["statements_per_step"], 2)),
        ("RSS", "MB", 5, lambda run: _n(max((v for v in run["worker_peak_rss_mb"] if v is not None), default=None))),
        ("worker", "CPU %", 8, lambda run: _n(run["worker_cpu_percent"])),
        ("PG", "CPU %", 7, lambda run: _n(run["postgres_cpu_percent"])),
        ("machine", "busy %", 8, lambda run: _n(run["machine_busy_percent"])),
    ]
    lines.append(f"  {'run':<18}" + "".join(f"{head:>{width}}" for head, _, width, _ in columns))
    lines.append(f"  {'':<18}" + "".join(f"{sub:>{width}}" for _, sub, width, _ in columns))
    runs = [(f"W1, {w} worker(s)", run) for w, run in results["w1"]["runs"].items()]
    runs += [(f"W4, {w} worker(s)", run) for w, run in results["w4"]["runs"].items()]
    f1, f2 = results["f1"], results["f2"]
    runs += [(f"F1, {f1['workers']} worker(s)", f1), (f"F2, {f2['workers']} worker(s)", f2)]
    s1 = results["s1"]
    runs.append((f"S1, {s1['servers']}+{s1['workers']}", s1))
    runs.append(("O3, 1 worker", results["o3"]))
    for label, run in runs:
        lines.append(f"  {label:<18}" + "".join(f"{value(run):>{width}}" for _, _, width, value in columns))
    backlog = results["w4"]["backlog"]
    lines += [
        f"  W4 backlog: {_n(backlog['waiting_instances'])} far-future timers; "
        f"W4 ÷ W1 = {_n(results['w4']['ratio_to_w1'], 2)}",
        f"  F1: 1 instance, ForEach over {_n(f1['items'])} Noop items ({f1['concurrency']} at once): "
        f"{_n(f1['instance_seconds'], 2)} s from release to completion; F1 ÷ W1 = {_n(f1['ratio_to_w1'], 2)}",
        f"  F2: {_n(f2['instances'])} instances x Parallel of {f2['branches']} Noop branches; "
        f"F2 ÷ W1 = {_n(f2['ratio_to_w1'], 2)}",
        f"  S1: {s1['servers']} servers taking W1's starts at once, then {s1['workers']} workers: starts ÷ one "
        f"server's = {_n(s1['start_ratio_to_one_server'], 2)}; steps ÷ W1 with one worker = "
        f"{_n(s1.get('ratio_to_w1_1_workers'), 2)}; ran twice: {s1['ran_twice']}",
        f"  S1 tables, MiB per million instances: {s1['table_mib_per_million_instances']}",
        f"  S2: WAL per step with {_n(results['s2']['large']['state_bytes'])} bytes of state "
        f"{_n(results['s2']['large']['wal_bytes_per_step'])}, with {_n(results['s2']['small']['state_bytes'])} bytes "
        f"{_n(results['s2']['small']['wal_bytes_per_step'])}: ratio {_n(results['s2']['ratio'], 2)}",
    ]
    o1, o2 = results["o1"], results["o2"]
    lines += [
        "",
        f"operations: O1 {o1['schedules']} schedules x every second x {o1['seconds']} s = {_n(o1['nominal_times'])} "
        f"nominal times: started once {_n(o1['started_once'])}, not started {_n(o1['not_started'])}, missed or "
        f"skipped {_n(o1['missed_or_skipped'])}; lateness p50/p99/max {_n(o1['lateness_p50_ms'], 1)}/"
        f"{_n(o1['lateness_p99_ms'], 1)}/{_n(o1['lateness_max_ms'], 1)} ms",
        f"  O2: W1 while {_n(o2['finished_instances'])} finished instances are purged "
        f"({_n(o2['purged_while_w1_ran'])} deleted meanwhile{'' if o2['purge_outlasted_w1'] else ', purge ended first'}"
        f"): {_n(o2['w1_purging_steps_per_second'])} steps/s, idle {_n(o2['w1_idle_steps_per_second'])}; "
        f"÷ idle = {_n(o2['ratio_to_idle'], 2)}",
        f"  O3: W1 with a concurrency key of limit {results['o3']['limit']} over {results['o3']['keys']} keys, "
        f"1 worker: ÷ W1 with 1 worker = {_n(results['o3']['ratio_to_w1'], 2)}",
    ]
    c1 = results["c1"]
    lines += [
        "",
        f"console: C1 GET /ui/instances over {_n(c1['instances'])} instances, ms".ljust(48) + f"{'p50':>8}{'p95':>8}",
    ]
    lines += [
        f"  {label}".ljust(48) + f"{_n(figures['p50_ms'], 1):>8}{_n(figures['p95_ms'], 1):>8}"
        for label, figures in c1["filters"].items()
    ]
    watch = c1["watchers"]
    lines.append(
        f"  {watch['watchers']} browsers watching one instance: {watch['server_connections']} connections to the "
        f"database, {_n(watch['transactions_per_second_while_watched'], 1)} transactions/s while nothing changed "
        f"({_n(watch['transactions_per_second_unwatched'], 1)} without watchers); "
        f"all answered {_n(watch['all_answered_after_change_ms'], 1)} ms after a change"
    )
    batch = results["batch_starts"]
    lines += [
        "",
        f"starts, instances/s: single (W1's, {results['sizes']['start_concurrency']} in flight, median of its "
        f"rounds) {_n(results['w1']['start_per_second_median'])}; batch ({_n(batch['batch_size'])} per request, "
        f"{batch['in_flight']} in flight) {_n(batch['instances_per_second'])} (server CPU "
        f"{_n(batch['server_cpu_percent'])}% of a core)",
    ]
    w2, w3, f3 = results["w2"], results["w3"], results["f3"]
    lines += [
        "",
        f"{'latency, ms':<48}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}",
        f"  W2 start → first handler ({w2['instances']} one at a time)".ljust(48)
        + "".join(f"{_n(w2[k], 1):>8}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"  W3 timer lateness ({w3['instances']} x {w3['sleep_seconds']:g} s)".ljust(48)
        + "".join(f"{_n(w3[k], 1):>8}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"  F3 event → next handler ({f3['instances']} one at a time)".ljust(48)
        + "".join(f"{_n(f3[k], 1):>8}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        "",
        "targets",
    ]
    for name, target in results["targets"].items():
        status = {True: "met", False: "NOT met", None: "—"}[target["met"]]
        lines.append(f"  {name:<24}{_n(target['value'], 2):>10}  {target['target']:<8} {status}")
    return "\n".join(lines)
