"""Writes a release benchmark's rows (JSON lines on stdin, one per release, from run.sh) to
PREFIX.json and as a markdown table to PREFIX.md, and prints the table.

    python3 bench/release/table.py PREFIX < rows.jsonl"""
import json
import sys

prefix = sys.argv[1]
rows = [json.loads(line) for line in sys.stdin if line.strip()]
with open(prefix + ".json", "w") as out:
    json.dump(rows, out, indent=2)
lines = ["| release | playbook | requests | failed | longest gap | client threads | load (1 min) |",
         "|---|---|---:|---:|---:|---:|---|"]
for r in rows:
    lines.append(f"| {r['release']} | rc={r['playbook_rc']}, {r['playbook_s']} s | {r['sent']} | {r['failed']} | "
                 f"{r['longest_gap_s']} s | {r['threads']} | {r['load_before']} -> {r['load_after']} |")
with open(prefix + ".md", "w") as out:
    out.write("\n".join(lines) + "\n")
print("\n".join(lines))
