"""Checks of report.py's --rounds (run by .ci/run: python3 -m unittest discover -s bench)."""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


def echo(server, rep, server_cpu, msgs_per_s=10_000):
    return {"id": "echo-1x32", "test": "ws-echo", "server": server, "rep": rep,
            "server_cpu": server_cpu, "msgs_per_s": msgs_per_s}


def idle(server, rep, connects_per_s):
    return {"id": "idle-lp", "test": "idle", "server": server, "rep": rep, "connects_per_s": connects_per_s}


class Rounds(unittest.TestCase):
    def rounds(self, *files, names=("wa",)):
        paths = []
        for runs in files:
            f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
            f.write("".join(json.dumps(r) + "\n" for r in runs))
            f.close()
            paths.append(f.name)
        argv, out = sys.argv, io.StringIO()
        sys.argv = ["report.py", *paths] + [a for n in names for a in ("--rounds", n)]
        try:
            with contextlib.redirect_stdout(out):
                report.main()
        finally:
            sys.argv = argv
            for p in paths:
                os.unlink(p)
        return out.getvalue().split("rounds:", 1)[1]

    def test_lower_cpu_wins_a_round_and_the_best_peer_is_taken_per_round(self):
        runs = [echo("wa", 1, 0.30), echo("fast", 1, 0.40), echo("slow", 1, 0.50),
                echo("wa", 2, 0.45), echo("fast", 2, 0.40), echo("slow", 2, 0.50),
                echo("wa", 3, 0.45), echo("fast", 3, 0.50), echo("slow", 3, 0.40)]
        line = next(l for l in self.rounds(runs).splitlines() if "echo-1x32" in l)
        self.assertIn("fast 2/3", line)
        self.assertIn("slow 2/3", line)
        self.assertIn("best peer 1/3", line)

    def test_connects_per_second_higher_wins(self):
        runs = [idle("wa", 1, 20_000), idle("axum", 1, 2_000), idle("wa", 2, 1_000), idle("axum", 2, 2_000)]
        line = next(l for l in self.rounds(runs).splitlines() if "idle-lp" in l)
        self.assertIn("axum 1/2", line)

    def test_files_keep_their_own_rounds(self):
        first = [echo("wa", 1, 0.30), echo("peer", 1, 0.40)]
        second = [echo("wa", 1, 0.50), echo("peer", 1, 0.40)]
        line = next(l for l in self.rounds(first, second).splitlines() if "echo-1x32" in l)
        self.assertIn("peer 1/2", line)

    def test_servers_named_by_rounds_are_not_each_others_peers(self):
        runs = [echo("wa", 1, 0.30), echo("wa-flag", 1, 0.10), echo("peer", 1, 0.40)]
        text = self.rounds(runs, names=("wa", "wa-flag"))
        self.assertNotIn("wa-flag 0/1", text)
        self.assertIn("peer 1/1, best peer 1/1", text)


if __name__ == "__main__":
    unittest.main()
