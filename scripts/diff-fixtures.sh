#!/usr/bin/env bash
# Developer tool: build every fixture, run objtool and altcfi on it, and print a match summary.
# Usage: scripts/diff-fixtures.sh [FIXTURE-GLOB]   (needs scripts/deps.sh and a built target/debug/altcfi)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-/tmp/altcfi-diff}
rm -rf "$out"; mkdir -p "$out"
bin=$repo/target/debug/altcfi
pass=0; fail=0
for src in "$repo"/tests/fixtures/core/${1:-*} "$repo"/tests/fixtures/alt/${1:-*}; do
  case $src in *.S|*.c) ;; *) continue;; esac
  name=$(basename "${src%.*}")
  obj=$("$repo/tests/fixtures/build.sh" "$src" "$out" 2>/dev/null) || { echo "BUILD-FAIL $name"; continue; }
  oracle=$(grep -m1 -oE 'altcfi-oracle:\s*\S+' "$src" | awk '{print $2}'); oracle=${oracle:-both}
  for v in 612 61; do
    [ "$oracle" = both ] || [ "$oracle" = "$v" ] || continue
    if [ $v = 612 ]; then k=6.12; f=modern; else k=6.1; f=legacy; fi
    "$repo/scripts/objtool-oracle.sh" $v check "$obj" 2>&1 | grep ': warning: objtool: ' | sed "s|^$out/||" | sort > "$out/$name.$v.ow"
    "$repo/scripts/objtool-oracle.sh" $v dump "$obj" 2>/dev/null > "$out/$name.$v.od"
    (cd "$out" && "$bin" check --kernel $k "$name.o" 2>&1) | grep ': warning: altcfi: ' | sed 's/: warning: altcfi: /: warning: objtool: /' | sort > "$out/$name.$v.aw"
    "$bin" orc --kernel $k --dump-format $f "$obj" 2>/dev/null > "$out/$name.$v.ad"
    if cmp -s "$out/$name.$v.ow" "$out/$name.$v.aw" && cmp -s "$out/$name.$v.od" "$out/$name.$v.ad"; then
      pass=$((pass+1))
    else
      fail=$((fail+1))
      w=ok; cmp -s "$out/$name.$v.ow" "$out/$name.$v.aw" || w=WARN
      d=ok; cmp -s "$out/$name.$v.od" "$out/$name.$v.ad" || d=ORC
      echo "MISMATCH $name $v $w $d"
    fi
  done
done
echo "$pass passed, $fail failed"
