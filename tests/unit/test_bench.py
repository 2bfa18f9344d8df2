"""The bench's report of repeated site.yml/floor pairs (bench/bench.py, --pairs): the ratio a
host count gets is the median of its pairs' ratios, the details stay the first pair's, and the
markdown lists every pair. Pure functions, no hosts."""
import importlib.util

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench", REPO / "bench" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def run(seconds, cpu=10.0):
    return {"seconds": seconds, "changed": 66, "controller_cpu_seconds": cpu, "load_before": [1.0, 1.0, 1.0],
            "load_after": [2.0, 2.0, 2.0]}


def pair(deployer, floor):
    return {"deployer": run(deployer), "floor": run(floor), "ratio": round(deployer / floor, 2)}


def test_the_ratio_is_the_median_of_the_pairs_and_the_details_the_first_pairs():
    entry = {"hosts": 1, "pairs": [pair(90.0, 50.0), pair(80.0, 50.0), pair(72.0, 60.0)]}
    bench.summarize_pairs(entry)
    assert entry["ratio"] == 1.6  # 1.8, 1.6 and 1.2: the median (the mean is 1.53)
    assert entry["deployer"]["seconds"] == 90.0 and entry["floor"]["seconds"] == 50.0


def test_a_pair_without_its_floor_yet_counts_for_no_ratio():
    entry = {"hosts": 2, "pairs": [{"deployer": run(100.0)}]}
    bench.summarize_pairs(entry)
    assert "ratio" not in entry and "floor" not in entry
    assert entry["deployer"]["seconds"] == 100.0
    entry["pairs"] = [pair(100.0, 50.0), {"deployer": run(70.0)}]
    bench.summarize_pairs(entry)
    assert entry["ratio"] == 2.0


def test_the_report_lists_every_pair_only_when_there_are_several():
    data = {"started": "x", "finished": "y", "total_seconds": 1,
            "machine": {"cores": 2, "cpu": "c", "memory_gib": 1, "docker_server": "d", "ansible_core": "a",
                        "mitogen": "m"},
            "deploys": [bench.summarize_pairs({"hosts": 1, "pairs": [pair(90.0, 50.0), pair(75.0, 50.0)]})]}
    report = bench.markdown(data)
    assert "| 1 | 90.0 |" in report and "| **1.65** |" in report
    assert "| 1 | 1 | 90.0 | 50.0 | 1.8 | 10.0 |" in report
    assert "| 1 | 2 | 75.0 | 50.0 | 1.5 | 10.0 |" in report
    data["deploys"] = [bench.summarize_pairs({"hosts": 1, "pairs": [pair(90.0, 50.0)]})]
    assert "| pair |" not in bench.markdown(data)
