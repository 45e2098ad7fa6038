"""``wattwise cache ls | info KEY | verify | gc``: the artifact cache and what it saved."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "list, inspect, verify and trim the artifact cache (energy each entry cost and saved)"
#: Shown for an entry whose header names no writer (written before writers were recorded).
UNKNOWN_WRITER = "unknown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions of ``wattwise cache``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache", metavar="URL", help="cache folder or fsspec URL (default: $WATTWISE_CACHE, "
        "else .wattwise/cache at the project root)",
    )  # fmt: skip
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    sub.add_parser("ls", parents=[common], help="list entries, newest first: size, energy, hits")
    info = sub.add_parser("info", parents=[common], help="one entry: cost, key parts, hits")
    info.add_argument(
        "key", type=_args.cache_key, help="entry key or unique prefix (4+ characters)"
    )
    verify = sub.add_parser(
        "verify", parents=[common], help="check every entry's hash; find unsafe pickles"
    )
    verify.add_argument("--fix", action="store_true", help="remove the bad entries")
    gc = sub.add_parser("gc", parents=[common], help="remove old entries, shrink to a size")
    gc.add_argument("--max-size", metavar="SIZE", help="keep at most this much: 500MB, 10GiB")
    gc.add_argument("--older-than", metavar="AGE", help="remove entries older than: 30d, 12h")
    gc.add_argument(
        "--evict", choices=("cheapest", "oldest"), default="cheapest",
        help="to meet --max-size, remove first the entries with the least energy to "
        "recompute per byte (cheapest, default) or the oldest",
    )  # fmt: skip
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")


def size(n: float) -> str:
    """Bytes with a readable unit (powers of 1000)."""
    for factor, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{int(n)} B"


def _age(timestamp: float | None) -> str:
    if not timestamp:
        return "?"
    return fmt.duration(max(0.0, time.time() - timestamp)) + " ago"


def _hits(store_ref: str | None) -> dict[str, list[Any]]:
    from wattwise.store import open_store

    store = open_store(store_ref)
    try:
        events = store.reuse_events()
    finally:
        store.close()
    by_key: dict[str, list[Any]] = {}
    for event in events:
        by_key.setdefault(event.cache_key, []).append(event)
    return by_key


def _ls(cache: Any, args: argparse.Namespace) -> int:
    entries = cache.entries()[::-1]  # newest first, as every list the CLI prints
    hits = _hits(args.store)
    if args.json:
        listed = [{**e.to_dict(), "hits": len(hits.get(e.key, []))} for e in entries]
        print(json.dumps({"cache": cache.location, "is_private": cache.is_private,
                          "entries": listed}, indent=2))  # fmt: skip
        return 0
    kind = "private" if cache.is_private else "shared"
    if not entries:
        print(fmt.safe(f"The cache at {cache.location} ({kind}) is empty."))
        return 0
    rows = [
        [e.key[:12], e.function, e.writer or UNKNOWN_WRITER, size(e.size_bytes),
         _age(e.modified_at), fmt.energy(e.energy_j), str(len(hits.get(e.key, [])))]
        for e in entries
    ]  # fmt: skip
    headers = ["KEY", "FUNCTION", "WRITER", "SIZE", "WRITTEN", "ENERGY TO PRODUCE", "HITS"]
    print(fmt.table(headers, rows))
    total_hits = sum(len(v) for k, v in hits.items() if any(e.key == k for e in entries))
    avoided = sum(ev.energy_avoided_j for k, v in hits.items() for ev in v
                  if any(e.key == k for e in entries))  # fmt: skip
    print(fmt.safe(
        f"{len(entries)} entries, {size(sum(e.size_bytes for e in entries))} in "
        f"{cache.location} ({kind}); they cost {fmt.energy(sum(e.energy_j for e in entries))} "
        f"to produce; {total_hits} hits in this ledger avoided {fmt.energy(avoided)}."
    ))
    return 0


def _info(cache: Any, args: argparse.Namespace) -> int:
    entry = cache.info(args.key)
    events = _hits(args.store).get(entry.key, [])
    if args.json:
        data = entry.to_dict(full=True)
        data["hits"] = [e.to_dict() for e in events]
        print(json.dumps(data, indent=2, default=str))
        return 0
    cost = entry.cost
    meters = ", ".join(f"{k}: {v}" for k, v in (cost.get("meters") or {}).items())
    lines = [
        f"Entry {entry.key}",
        f"  function  {entry.function}  version {entry.version}",
        f"  written   {_age(entry.modified_at)} by {entry.writer or UNKNOWN_WRITER}  size "
        f"{size(entry.size_bytes)}  formats {', '.join(entry.formats) or '-'}",
        f"  cost      {fmt.energy(float(cost.get('energy_j') or 0))} "
        f"{cost.get('method', '?')} ({meters or 'no meter'}), "
        f"{fmt.carbon(float(cost.get('co2e_g') or 0))}, "
        f"{fmt.duration(float(cost.get('duration_s') or 0))}",
        f"            {cost.get('how', '')}; producing run {str(cost.get('producer_run_id'))[:8]}",
    ]
    parts = entry.header.get("key_parts") or {}
    lines.append(f"  key       source {parts.get('source')}")
    for name, arg in (parts.get("arguments") or {}).items():
        lines.append(f"            {name}: {arg.get('type')} {str(arg.get('digest'))[:16]}")
    if parts.get("ignored"):
        lines.append(f"            ignored: {', '.join(parts['ignored'])}")
    avoided = sum(e.energy_avoided_j for e in events)
    lines.append(f"  hits      {len(events)} in this ledger, avoided {fmt.energy(avoided)}")
    print(fmt.lines(lines))
    return 0


def _verify(cache: Any, args: argparse.Namespace) -> int:
    problems = cache.verify(fix=args.fix)
    count = len(cache.entries()) + sum(p.is_removed for p in problems)
    if args.json:
        print(json.dumps({"cache": cache.location, "checked": count,
                          "problems": [p.to_dict() for p in problems]}, indent=2))  # fmt: skip
    elif not problems:
        print(fmt.safe(f"{count} entries checked in {cache.location}: all good."))
    else:
        for p in problems:
            action = "removed" if p.is_removed else "run with --fix to remove"
            print(fmt.safe(f"{p.key[:16]}  {p.kind}: {p.detail} ({action})"))
        print(f"{len(problems)} of {count} entries failed verification.")
    return 1 if any(not p.is_removed for p in problems) else 0


def _gc(cache: Any, args: argparse.Namespace) -> int:
    from wattwise.cache import parse_age, parse_size
    from wattwise.cli._main import UsageError

    if args.max_size is None and args.older_than is None:
        msg = "wattwise cache gc: give --max-size SIZE and/or --older-than AGE"
        raise UsageError(msg)
    result = cache.gc(
        max_size_bytes=None if args.max_size is None else parse_size(args.max_size),
        older_than_s=None if args.older_than is None else parse_age(args.older_than),
        evict=args.evict, dry_run=args.dry_run,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    verb = "Would remove" if result.is_dry_run else "Removed"
    energy = sum(e.energy_j for e in result.removed)
    leftovers = result.temporary_removed
    print(
        f"{verb} {len(result.removed)} entries ({size(result.freed_bytes)}, "
        f"{fmt.energy(energy)} to recompute if needed again); {result.kept} remain "
        f"({size(result.remaining_bytes)})."
        + (f" {leftovers} leftover temporary files." if leftovers else "")
    )
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the cache action."""
    from wattwise.cache import ArtifactCache

    cache = ArtifactCache(args.cache)
    handler = {"ls": _ls, "info": _info, "verify": _verify, "gc": _gc}[args.action]
    return handler(cache, args)
