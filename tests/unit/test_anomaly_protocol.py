"""The protocol against fitting ourselves (anomaly/protocol.py, `ugem anomaly protocol`).

The fixed design is checked without generating it (seeds, shapes, options);
everything that runs does so on a small design: a few connections, a few
days, two kinds, so each trace takes about a second.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import anomaly.protocol as protocol
from anomaly.evaluate import load_labels
from anomaly.protocol import (
    CALIBRATED,
    CURRENT,
    DEFAULT_SETTINGS,
    DESIGN,
    LOKO_MIN_INCIDENTS,
    NORMAL,
    Cache,
    Design,
    DetectorSettings,
    FalseSuspension,
    IncidentResult,
    Method,
    Report,
    SetReport,
    Shape,
    TraceFiles,
    TraceResult,
    cache_key,
    evaluate_detector,
    load_report,
    parse_sets,
    render_markdown,
    render_text,
    run,
    save_report,
    simulate_args,
    trace_table,
)
from anomaly.protocol_design import DETECTOR_FILES
from anomaly.sim_incidents import incident_count
from anomaly.simulate import KIND_NAMES, SimOptions, Summary, simulate
from ugem.cli import main
from ugem.core.errors import UsageError

SMALL = Design(
    tuning=(Shape(1, 6, 3, dt.date(2026, 3, 2)),),
    holdout=(Shape(9001, 6, 3, dt.date(2026, 9, 7)),),
    per_week=150.0,
    kinds=("open-relay", "mail-loop"),
    loko_tuning_size=(6, 3),
    loko_eval_size=(8, 3),
    loko_eval_per_week=300.0,
    public=Path("/nonexistent/public"),
)


# --- the design ------------------------------------------------------------------------------


def test_the_seed_sets_are_disjoint() -> None:
    seeds = DESIGN.seeds()
    for role, values in seeds.items():
        assert len(set(values)) == len(values), role
    for (a, sa), (b, sb) in itertools.combinations(seeds.items(), 2):
        assert not set(sa) & set(sb), (a, b)
    assert not set(seeds["holdout"]) & set(seeds["tuning"])
    assert not set(seeds["loko-eval"]) & (set(seeds["tuning"]) | set(seeds["loko-tuning"]))


def test_the_held_out_set_has_the_issues_three_shapes() -> None:
    assert [(s.seed, s.connections, s.days) for s in DESIGN.holdout] == [
        (9028, 150, 28),
        (9029, 80, 7),
        (9030, 120, 21),
    ]
    assert DESIGN.seeds()["tuning"] == (1, 2, 3)
    # the held-out seeds looked at too often are retired, never reused in another role
    seeds = DESIGN.seeds()
    retired = set(seeds.pop("retired"))
    assert retired == set(range(9001, 9028))
    assert not retired & {s for role in seeds.values() for s in role}


def test_loko_leaves_each_kind_out_of_its_tuning_and_judges_it_alone() -> None:
    assert DESIGN.kinds == KIND_NAMES
    plan = DESIGN.plan("loko")
    assert [u.kind for u in plan.units] == list(KIND_NAMES)
    for unit in plan.units:
        (tune,) = unit.tuning
        (judge,) = unit.evaluation
        assert tune.options is not None and judge.options is not None
        assert tune.options.chosen_kinds() == [k for k in KIND_NAMES if k != unit.kind]
        assert judge.options.chosen_kinds() == [unit.kind]
        o = judge.options
        assert incident_count(o.per_week, o.connections, o.days) >= LOKO_MIN_INCIDENTS


def test_holdout_and_public_are_calibrated_on_the_tuning_seeds_only() -> None:
    tuning = DESIGN.plan("tune").units[0].tuning
    for name in ("holdout", "public"):
        (unit,) = DESIGN.plan(name).units
        assert unit.tuning == tuning
        assert not set(unit.evaluation) & set(tuning)


def test_sets_are_parsed_and_an_unknown_one_is_named() -> None:
    assert parse_sets("all") == ("tune", "holdout", "loko", "public")
    assert parse_sets("loko, holdout") == ("holdout", "loko")
    with pytest.raises(UsageError, match="--sets: 'heldout'"):
        parse_sets("heldout")
    with pytest.raises(UsageError, match="--sets"):
        parse_sets(",")


# --- the cache ------------------------------------------------------------------------------


def test_the_cache_key_changes_with_any_argument() -> None:
    base = SimOptions(seed=5, connections=4, days=3, per_week=100.0)
    changed: dict[str, Any] = {
        "seed": 6,
        "connections": 5,
        "days": 4,
        "start": dt.date(2026, 3, 9),
        "kinds": ("open-relay",),
        "exclude": ("mail-loop",),
        "per_week": 101.0,
        "abuse": False,
    }
    assert {f.name for f in dataclasses.fields(SimOptions)} == set(changed)
    keys = {cache_key(base)}
    for name, value in changed.items():
        keys.add(cache_key(dataclasses.replace(base, **{name: value})))
    assert len(keys) == 1 + len(changed)
    assert cache_key(SimOptions(seed=5, connections=4, days=3, per_week=100.0)) == cache_key(base)
    assert simulate_args(base)["simulator"] == protocol.simulator_digest()


def test_a_cached_trace_is_reused_and_one_of_other_arguments_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[SimOptions] = []
    real = simulate

    def counting(options: SimOptions, prefix: Path) -> Summary:
        calls.append(options)
        return real(options, prefix)

    monkeypatch.setattr("anomaly.protocol_cache.simulate", counting)
    cache = Cache(tmp_path / "cache")
    options = SimOptions(seed=3, connections=3, days=2, per_week=100.0)
    ref = protocol.TraceRef("t", options)
    first = cache.files(ref)
    made = first.trace.stat().st_mtime_ns
    again = cache.files(ref)
    assert again == first and len(calls) == 1
    assert again.trace.stat().st_mtime_ns == made
    other = protocol.TraceRef("u", dataclasses.replace(options, per_week=99.0))
    assert cache.files(other).trace != first.trace and len(calls) == 2
    # a marker that does not match the options (another simulator, a torn write): made again
    marker = Path(f"{cache.prefix(options)}.args.json")
    marker.write_text(json.dumps({"seed": 3}), encoding="utf-8")
    cache.files(ref)
    assert len(calls) == 3


# --- running ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Recorder:
    """A calibrating method that notes what it was given and judges nothing."""

    given: list[list[TraceFiles]] = dataclasses.field(default_factory=list)

    def calibrate(self, tuning: Sequence[TraceFiles]) -> DetectorSettings:
        self.given.append(list(tuning))
        return DetectorSettings("recorded", (("n", float(len(self.given))),))

    def evaluate(self, settings: DetectorSettings, files: TraceFiles, jobs: int) -> TraceResult:
        return TraceResult(files.name, "", 0, 0.0, (), (), ())


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    return Cache(tmp_path_factory.mktemp("protocol") / "cache")


@pytest.fixture(scope="module")
def small_report(small_cache: Cache) -> Report:
    return run(["tune", "holdout", "loko"], small_cache, 1, design=SMALL)


def _kinds(files: TraceFiles) -> set[str]:
    return {i.kind for i in load_labels(files.labels)}


def test_a_calibration_sees_only_its_tuning_traces(small_cache: Cache) -> None:
    rec = Recorder()
    method = Method("recorder", rec.calibrate, rec.evaluate, True)
    report = run(["holdout", "loko"], small_cache, 2, method, SMALL)
    holdout, *loko = rec.given
    assert [f.name for f in holdout] == ["tune-1"]
    assert [[f.name for f in g] for g in loko] == [[f"loko-tune-{k}"] for k in SMALL.kinds]
    for kind, (given,) in zip(SMALL.kinds, loko, strict=True):
        assert kind not in _kinds(given)  # never sees the kind it is judged on
        assert _kinds(given)  # but it does see abuse
    assert [s.name for s in report.sets] == ["holdout", "loko"]


def test_loko_traces_exclude_the_kind_and_judge_it_alone(small_cache: Cache) -> None:
    for unit in SMALL.plan("loko").units:
        (tune,), (judge,) = unit.tuning, unit.evaluation
        assert unit.kind not in _kinds(small_cache.files(tune))
        assert _kinds(small_cache.files(judge)) == {unit.kind}


def test_the_default_thresholds_read_no_tuning_trace_and_other_settings_are_refused(
    small_report: Report, small_cache: Cache
) -> None:
    assert CURRENT.calibrate([]) == DEFAULT_SETTINGS
    assert all("not made" in s.calibration for s in small_report.sets)
    files = small_cache.files(SMALL.plan("tune").units[0].evaluation[0])
    with pytest.raises(UsageError, match="not the detector's thresholds"):
        evaluate_detector(DetectorSettings("x", (("a", 1.0),)), files, 1)


def test_the_calibrated_method_chooses_thresholds_on_its_tuning_traces_and_uses_them(
    small_cache: Cache,
) -> None:
    tuning = [small_cache.files(r) for r in SMALL.plan("tune").units[0].tuning]
    settings = CALIBRATED.calibrate(tuning)
    values = dict(settings.values)
    assert set(values) == {"throttle", "suspend", "corroborated"}
    assert values["throttle"] <= values["suspend"]
    assert "calibrated: suspend at" in settings.name and "tuning incidents" in settings.name
    judged = CALIBRATED.evaluate(settings, tuning[0], 1)
    assert judged.events > 0 and judged.incidents  # replayed with those thresholds


def test_each_trace_judged_names_the_thresholds_it_was_judged_with(
    small_cache: Cache, tmp_path: Path
) -> None:
    """A leave-one-kind-out set has one calibration per kind: each trace keeps its own."""
    report = run(["holdout"], small_cache, 1, CALIBRATED, SMALL)
    (judged,) = report.sets
    for trace in judged.traces:
        assert {k for k, _ in trace.settings} == {"throttle", "suspend", "corroborated"}
        shown = next(line for line in trace_table(judged) if line[0] == trace.name)
        assert shown[2] == " ".join(f"{k} {v:g}" for k, v in trace.settings)
    path = tmp_path / "r.json"
    save_report(report, path)
    assert load_report(path) == report


def test_the_rows_of_a_run_add_up_to_its_total(small_report: Report) -> None:
    assert [s.name for s in small_report.sets] == ["tune", "holdout", "loko"]
    loko = small_report.sets[2]
    assert [t.name for t in loko.traces] == [f"loko-eval-{k}" for k in SMALL.kinds]
    for s in small_report.sets:
        _check_sums(s)
        assert s.events > 0 and s.total().incidents > 0


def _check_sums(s: SetReport) -> None:
    rows, total = s.rows(), s.total()
    assert rows[-1].label == NORMAL and rows[-1].incidents == 0
    for name in (
        "incidents",
        "detected",
        "suspended_before",
        "leaked",
        "leaked_of",
        "false_suspensions",
        "throttles",
    ):
        assert sum(getattr(r, name) for r in rows) == getattr(total, name), name
    maxima = [r.max_ttd for r in rows if r.max_ttd is not None]
    assert total.max_ttd == (max(maxima) if maxima else None)


def _incident(kind: str, detected: bool, ttd: float | None, leaked: int) -> IncidentResult:
    return IncidentResult("t", "c.kz", kind, 0.0, 100.0, detected, ttd, leaked, 100, False)


def test_a_report_of_known_numbers() -> None:
    false = FalseSuspension("t", "d.kz", 5.0, "r", ("volume",), 7200.0, ("outage backlog",))
    trace = TraceResult(
        "t",
        "--seed 1",
        1000,
        0.5,
        (
            _incident("open-relay", True, 10.0, 1),
            _incident("open-relay", True, 30.0, 3),
            _incident("on-off", False, None, 100),
            _incident("on-off", True, 900.0, 50),
        ),
        (false,),
        ("open-relay", NORMAL, NORMAL),
    )
    s = SetReport("x", "title", "cal", (), (trace,))
    _check_sums(s)
    by_kind = {r.label: r for r in s.rows()}
    assert list(by_kind) == ["open-relay", "on-off", NORMAL]  # the simulator's order
    assert (by_kind["open-relay"].median_ttd, by_kind["open-relay"].max_ttd) == (20.0, 30.0)
    assert by_kind["open-relay"].leaked_pct == 2.0 and by_kind["open-relay"].throttles == 1
    assert by_kind["on-off"].misses() == ("1 undetected", "median", "max", "leak")
    total = s.total()
    assert (total.incidents, total.detected, total.median_ttd, total.max_ttd) == (4, 3, 30.0, 900)
    assert (total.false_suspensions, total.throttles, total.leaked_pct) == (1, 3, 38.5)
    assert s.events_per_s == 2000.0


def test_the_report_renders_as_markdown_text_and_json(small_report: Report, tmp_path: Path) -> None:
    md = render_markdown(small_report)
    tables = [line for line in md.splitlines() if line.startswith("|")]
    assert tables and "| kind | detected | median time to detect |" in md
    blocks = [list(g) for k, g in itertools.groupby(md.splitlines(), lambda x: x[:1] == "|") if k]
    for block in blocks:  # every line of a table has its header's number of cells
        assert block[1].startswith("|---")
        assert len({line.count(" | ") for line in block if not line.startswith("|---")}) == 1
    assert "#### Totals against the targets" in md and "≥ 200,000 events/s" in md
    assert "per kind" in render_text(small_report)
    as_json = json.loads(json.dumps(small_report.as_json()))
    for s, js in zip(small_report.sets, as_json["sets"], strict=True):
        assert js["total"]["incidents"] == s.total().incidents
        assert sum(k["detected"] for k in js["kinds"]) == js["total"]["detected"]
    path = tmp_path / "r.json"
    save_report(small_report, path)
    assert load_report(path) == small_report


def test_the_command_prints_a_saved_report(
    small_report: Report, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    save_report(small_report, path)
    assert main(["anomaly", "protocol", "--load", str(path), "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == render_markdown(small_report).strip()
    assert main(["anomaly", "protocol", "--load", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sets"][0]["name"] == "tune"
    assert main(["anomaly", "protocol", "--sets", "nope"]) == 2
    assert "--sets: 'nope'" in capsys.readouterr().err


def test_a_missing_public_week_is_named_before_anything_is_simulated(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="week-a"):
        run(["public", "holdout"], Cache(tmp_path / "c"), 1, design=SMALL)
    assert not (tmp_path / "c").exists()


def test_the_detector_digest_covers_every_module_a_verdict_depends_on() -> None:
    """A report names the detector by a digest of its files: a module the detector imports
    (directly or not) that the digest misses would let two detectors share a name. The
    trace reader only parses events and is not part of it."""
    here = Path(__file__).resolve().parents[2] / "anomaly"
    seen, todo = set(), ["detector.py"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((here / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "anomaly":
                todo += [f"{alias.name}.py" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anomaly."):
                todo.append(f"{node.module.split('.')[1]}.py")  # type: ignore[union-attr]
    assert seen - {"trace_reader.py"} <= set(DETECTOR_FILES)
