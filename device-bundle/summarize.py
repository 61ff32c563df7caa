"""Summary JSON of one device run (issue 5): commit, device, driver and library versions from device.json, the JUnit
counts and failures from the XML report, and the JSON results of the train200, gpurun and service phases when they ran.
Usage: summarize.py OUT_DIR"""
import json
import os
import sys
import xml.etree.ElementTree as ET

out = sys.argv[1]
summary = {}
with open(os.path.join(out, "device.json")) as f:
    summary.update(json.load(f))
driver = os.path.join(out, "nvidia-smi.txt")
if os.path.exists(driver):
    summary["nvidiaSmi"] = open(driver).read().strip()
xml = next((os.path.join(root, name) for root, _, files in os.walk(out) for name in files
            if name == "TEST-junit-jupiter.xml"), None)
if xml:
    suites = ET.parse(xml).getroot()
    cases = suites.iter("testcase")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for case in cases:
        counts["tests"] += 1
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                counts[kind + ("s" if kind != "skipped" else "")] += 1
                if kind != "skipped":
                    failed.append(case.get("classname") + "#" + case.get("name"))
    summary["junit"] = counts
    summary["failed"] = failed
for name in ("train200", "train200dense", "gpurun-compare", "gpurun-hf", "service"):
    path = os.path.join(out, name + ".json")
    if os.path.exists(path):
        try:
            summary[name] = json.load(open(path))
        except ValueError as e:  # a check that died before printing its JSON: its log says why
            summary[name] = {"unreadable": str(e)}
print(json.dumps(summary, indent=2))
