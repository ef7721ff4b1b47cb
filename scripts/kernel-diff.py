#!/usr/bin/env python3
"""Real-tree differential: altcfi against objtool on every object of a kbuild build directory.

    python3 scripts/kernel-diff.py BUILD_DIR --altcfi target/release/altcfi [--json OUT] [-j N] [-v]

For every `.o` under BUILD_DIR (the objects' own `.NAME.o.cmd` next to them):
- kbuild ran objtool on it (the `.cmd` ends in `; ./tools/objtool/objtool ARGS OBJ`, IBT off): the expected
  warnings are the build log's (BUILD_DIR/build.log, lines `OBJ: warning: objtool: ...`), the expected ORC is the
  table objtool embedded (`objtool --dump=orc OBJ`, the tree's own objtool);
- kbuild would validate it but delays objtool to vmlinux.o (IBT or LTO): the tree's objtool runs on a copy with the
  per-object arguments scripts/Makefile.lib builds from include/config/auto.conf; its stderr and `--dump=orc` of the
  copy are the expected result;
- kbuild never validates it (the vdso, OBJECT_FILES_NON_STANDARD): altcfi must say so and report nothing.
altcfi runs with NO option: it has to find the tree, the generation and objtool's arguments by itself.

The oracle side reads only the build directory (cmd files, auto.conf, build.log) and runs only the tree's objtool;
it never asks altcfi. Prints one line per object that differs and a summary; exits 1 when any object differs.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def read_auto_conf(build):
    conf = {}
    path = os.path.join(build, "include/config/auto.conf")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
            if m:
                conf[m.group(1)] = m.group(2).strip('"')
    return conf


def kbuild_objtool_args(conf, module=False):
    """objtool-args as scripts/Makefile.lib (6.x) builds them from the configuration."""
    y = lambda name: conf.get("CONFIG_" + name) == "y"  # noqa: E731
    args = []
    pairs = [
        ("HAVE_JUMP_LABEL_HACK", "--hacks=jump_label"),
        ("HAVE_NOINSTR_HACK", "--hacks=noinstr"),
        ("MITIGATION_CALL_DEPTH_TRACKING", "--hacks=skylake"),
        ("CALL_DEPTH_TRACKING", "--hacks=skylake"),  # before the MITIGATION_ rename
        ("X86_KERNEL_IBT", "--ibt"),
        ("FINEIBT", "--cfi"),
        ("FTRACE_MCOUNT_USE_OBJTOOL", "--mcount"),
        ("UNWINDER_ORC", "--orc"),
        ("MITIGATION_RETPOLINE", "--retpoline"),
        ("RETPOLINE", "--retpoline"),
        ("MITIGATION_RETHUNK", "--rethunk"),
        ("RETHUNK", "--rethunk"),
        ("MITIGATION_SLS", "--sls"),
        ("SLS", "--sls"),
        ("STACK_VALIDATION", "--stackval"),
        ("HAVE_STATIC_CALL_INLINE", "--static-call"),
        ("HAVE_UACCESS_VALIDATION", "--uaccess"),
        ("GCOV_KERNEL", "--no-unreachable"),
    ]
    for name, arg in pairs:
        if y(name) and arg not in args:
            args.append(arg)
    if y("FTRACE_MCOUNT_USE_OBJTOOL") and y("HAVE_OBJTOOL_NOP_MCOUNT"):
        args.insert(args.index("--mcount") + 1, "--mnop")
    if y("PREFIX_SYMBOLS"):
        args.append("--prefix=" + conf.get("CONFIG_FUNCTION_PADDING_BYTES", "0"))
    if y("LTO_CLANG") or y("X86_KERNEL_IBT"):
        args.append("--link")
    if module:
        args.append("--module")
    return args


OBJTOOL_IN_CMD = re.compile(r";\s*\S*tools/objtool/objtool\s+(.*?)\s*(\S+\.o)\s*$")


def cmd_file(obj):
    d, b = os.path.split(obj)
    return os.path.join(d, "." + b + ".cmd")


def first_cmd_line(obj):
    try:
        with open(cmd_file(obj), encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\n")
    except OSError:
        return None


def build_log_warnings(build):
    """OBJ (relative to BUILD) -> objtool's warning lines, as altcfi prints them (path-free)."""
    out = {}
    try:
        with open(os.path.join(build, "build.log"), encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^(\S+\.o): warning: objtool: (.*)$", line.rstrip("\n"))
                if m:
                    out.setdefault(os.path.normpath(m.group(1)), []).append(m.group(2))
    except OSError:
        pass
    return out


def run(cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace")
    return p.returncode, p.stdout, p.stderr


def objtool_warnings(text):
    return [m.group(1) for m in re.finditer(r"^\S+: warning: objtool: (.*)$", text, re.M)]


def altcfi_result(altcfi, obj):
    """(findings, orc lines, notes, exit status) of altcfi run with no option."""
    rc, out, err = run([altcfi, "check", "--no-source", obj])
    warnings = [m.group(1) for m in re.finditer(r"^\S+: warning: altcfi: (.*)$", out, re.M)]
    notes = [m.group(0) for m in re.finditer(r"^.*not validated by kbuild.*$", out + err, re.M)]
    orc_rc, orc_out, orc_err = run([altcfi, "orc", obj])
    orc = orc_out.splitlines() if orc_rc == 0 else ["altcfi orc failed: " + orc_err.strip()]
    return warnings, orc, notes, rc, err


def not_validated_result(altcfi, obj, rel, **extra):
    """An object kbuild does not have objtool check: altcfi must say so, report nothing and exit 0."""
    warn, _orc, notes, arc, _err = altcfi_result(altcfi, obj)
    ok = not warn and arc == 0 and bool(notes)
    return {"object": rel, "mode": "not-validated", "status": "match" if ok else "differ",
            "warnings": differ([], warn), "notes": notes, "exit": arc, **extra}


def differ(a, b, limit=6):
    """A short description of how lists a and b differ (first differences)."""
    if a == b:
        return None
    sa, sb = set(a), set(b)
    only_a = [x for x in a if x not in sb][:limit]
    only_b = [x for x in b if x not in sa][:limit]
    return {"expected_only": only_a, "altcfi_only": only_b, "expected": len(a), "altcfi": len(b)}


def check_object(build, rel, objtool, altcfi, conf, logged):
    obj = os.path.join(build, rel)
    line = first_cmd_line(obj)
    if line is None:
        return {"object": rel, "status": "no-cmd"}
    m = OBJTOOL_IN_CMD.search(line)
    processed = bool(m)
    if m:
        args = m.group(1).split()
        if not {"--orc", "--stackval", "--uaccess"} & set(args):
            # objtool does no stack validation here (vmlinux.o: --noinstr --link).
            return not_validated_result(altcfi, obj, rel, args=args)
    else:
        # Delayed to vmlinux.o (main() decided, from --standard-from or the configuration, that kbuild validates
        # it): the per-object arguments scripts/Makefile.lib builds.
        args = kbuild_objtool_args(conf)
    result = {"object": rel, "args": args}
    if processed:
        exp_warn = logged.get(os.path.normpath(rel), [])
        rc, out, err = run([objtool, "--dump=orc", rel], cwd=build)
        exp_orc = out.splitlines() if rc == 0 else ["objtool --dump failed: " + err.strip()]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, os.path.basename(rel))
            shutil.copyfile(obj, copy)
            rc, out, err = run([objtool] + args + [copy])
            exp_warn = objtool_warnings(err)
            rc2, out2, err2 = run([objtool, "--dump=orc", copy])
            exp_orc = out2.splitlines() if rc2 == 0 else ["objtool --dump failed: " + err2.strip()]
    warn, orc, notes, arc, aerr = altcfi_result(altcfi, obj)
    result["mode"] = "processed" if processed else "delayed"
    result["warnings"] = differ(exp_warn, warn)
    result["orc"] = differ(exp_orc, orc)
    result["orc_rows"] = len(exp_orc)
    # Counted over every row (the `differ` lists are cut short for the report).
    ours = set(orc)
    result["orc_rows_matching"] = sum(1 for row in exp_orc if row in ours)
    if arc == 2:
        result["altcfi_error"] = aerr.strip()[:500]
    result["status"] = "match" if not result["warnings"] and not result["orc"] and arc != 2 else "differ"
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--altcfi", required=True)
    ap.add_argument("--objtool", help="default: BUILD/tools/objtool/objtool")
    ap.add_argument("--json", help="write every object's result here")
    ap.add_argument("--standard-from", help="a build of the same tree with IBT off: its .cmd files say which "
                    "objects kbuild validates (objtool in the command)")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-v", action="store_true", help="print every differing object's first differences")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    objtool = os.path.abspath(a.objtool or os.path.join(build, "tools/objtool/objtool"))
    altcfi = os.path.abspath(a.altcfi)
    conf = read_auto_conf(build)
    logged = build_log_warnings(build)
    objs = []
    for root, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if d not in ("tools", "scripts", "source", ".tmp_versions")]
        for f in files:
            if f.endswith(".o") and not f.endswith(".mod.o"):
                objs.append(os.path.relpath(os.path.join(root, f), build))
    objs.sort()
    standard = None
    if a.standard_from:
        standard = set()
        for rel in objs:
            line = first_cmd_line(os.path.join(a.standard_from, rel))
            if line and OBJTOOL_IN_CMD.search(line):
                standard.add(rel)
    todo, skipped = [], []
    for rel in objs:
        line = first_cmd_line(os.path.join(build, rel))
        if line is None or " -c " not in line and not OBJTOOL_IN_CMD.search(line):
            continue  # linked or generated objects (built-in.a members are .o files with a compile command)
        if OBJTOOL_IN_CMD.search(line) or (standard is not None and rel in standard):
            todo.append(rel)
        elif standard is not None or conf.get("CONFIG_X86_KERNEL_IBT") != "y":
            skipped.append(rel)
        else:
            todo.append(rel)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.j) as ex:
        futs = [ex.submit(check_object, build, rel, objtool, altcfi, conf, logged) for rel in todo]
        for f in futs:
            results.append(f.result())
    # Objects kbuild never validates: altcfi must note them and report nothing.
    for rel in skipped:
        results.append(not_validated_result(altcfi, os.path.join(build, rel), rel))
    differing = [r for r in results if r["status"] != "match"]
    for r in differing:
        print(f"DIFFER {r['object']} ({r.get('mode')})")
        if a.v:
            for k in ("warnings", "orc", "altcfi_error", "notes", "exit"):
                if r.get(k):
                    print(f"    {k}: {json.dumps(r[k])[:1500]}")
    rows = sum(r.get("orc_rows", 0) for r in results)
    rows_ok = sum(r.get("orc_rows_matching", 0) for r in results)
    print(f"kernel-diff {build}: {len(results) - len(differing)} of {len(results)} objects match "
          f"({sum(1 for r in results if r.get('mode') == 'processed')} processed by kbuild, "
          f"{sum(1 for r in results if r.get('mode') == 'delayed')} delayed to vmlinux.o, "
          f"{sum(1 for r in results if r.get('mode') == 'not-validated')} not validated); "
          f"ORC rows {rows_ok} of {rows}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
