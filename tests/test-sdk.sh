#!/bin/sh
# The plugin SDK as an outside author meets it: install strata into a
# temporary prefix, build the plugins of examples/plugins/ against that
# install (the cc one-liner and their own meson.build files), and run the
# installed strata with them.  Prints TAP.
#
#   test-sdk.sh SOURCE_ROOT BUILD_ROOT
#
# BUILD_ROOT is the calling build, read only for its options.  The installed
# copy is always built without sanitizers: the examples and the installed
# strata are ordinary programs, and an instrumented plugin cannot be loaded
# into an uninstrumented process.
set -u

src=${1:?usage: test-sdk.sh SOURCE_ROOT BUILD_ROOT}
calling_build=${2:?usage: test-sdk.sh SOURCE_ROOT BUILD_ROOT}
src=$(cd "$src" && pwd) || exit 1
CC=${CC:-cc}

# Nothing from the caller's environment may help strata find its plugins or
# its library: the point is that an install finds its own.
unset STRATA_PLUGIN_PATH LD_LIBRARY_PATH

for tool in meson ninja pkg-config python3 "$CC"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "1..0 # SKIP $tool not found"
    exit 0
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-sdk.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log=$tmp/step.log
n=0
failures=0

# check DESCRIPTION COMMAND...: one test case.  The command's output goes to
# $log and is shown, as TAP comments, only when it fails.
check () {
  desc=$1
  shift
  n=$((n + 1))
  if "$@" >"$log" 2>&1; then
    echo "ok $n - $desc"
  else
    failures=$((failures + 1))
    echo "not ok $n - $desc"
    tail -n 40 "$log" | sed 's/^/# /'
  fi
}

# The same for a step that everything after it needs.
must () {
  before=$failures
  check "$@"
  if [ "$failures" -ne "$before" ]; then
    echo "Bail out! $1"
    exit 1
  fi
}

# ---- Install strata into a temporary prefix ---------------------------------

prefix=$tmp/prefix

# The calling build's options that change how code is compiled, one per
# line; not b_sanitize (see above).
calling_options () {
  meson introspect --buildoptions "$calling_build" | python3 -c '
import json, shlex, sys
for o in json.load(sys.stdin):
    name, value = o["name"], o["value"]
    if name not in ("buildtype", "c_args", "c_link_args", "pkg_config_path") or value in ("", []):
        continue
    if isinstance(value, list):
        value = ",".join(value) if name == "pkg_config_path" else shlex.join(value)
    print("-D%s=%s" % (name, value))
'
}

configure () {
  calling_options >"$tmp/options" || return 1
  set --
  while IFS= read -r line; do
    set -- "$@" "$line"
  done <"$tmp/options"
  echo "options from $calling_build: $*"
  meson setup "$tmp/build" "$src" --prefix="$prefix" -Db_sanitize=none "$@"
}

# Two jobs: a second full build of strata, next to the tests of the first.
install_strata () {
  ninja -C "$tmp/build" -j2 && meson install -C "$tmp/build" --quiet
}

must "configure a separate build with --prefix and no sanitizer" configure
must "build it and install it into the prefix" install_strata

strata=$prefix/bin/strata
pc=$(find "$prefix" -name strata.pc | head -n 1)
export PKG_CONFIG_PATH="${pc%/*}${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

pkg_config_flags () {
  flags=$(pkg-config --cflags --libs strata) || return 1
  echo "$flags"
  for want in "-I$prefix/include" -lstrata -lgmodule-2.0 -lglib-2.0 glib-2.0; do
    case " $flags " in
      *"$want"*) ;;
      *) echo "missing: $want"; return 1 ;;
    esac
  done
  plugindir=$(pkg-config --variable=plugindir strata)
  echo "plugindir: $plugindir"
  [ -f "$plugindir/kernel.so" ]
}
must "pkg-config --cflags --libs strata gives the headers, -lstrata, glib and gmodule" \
  pkg_config_flags
plugindir=$(pkg-config --variable=plugindir strata)

# Only the umbrella header, with gradcheck's declaration and libstrata's
# exported symbols: what an author's own test program starts from.  Strict
# ISO C, so that the headers use no POSIX-only names (M_SQRT1_2).
umbrella () {
  cat >"$tmp/umbrella.c" <<'C'
#include <strata/strata.h>

#include <stdio.h>

int
main (void)
{
  g_autoptr (StTensor) t = st_tensor_new0 (1, 2, 3, 4);
  g_autoptr (GError) error = NULL;
  char buf[64];
  /* A kind without backward: st_gradcheck refuses it before building it. */
  static const StKind kind = { ST_KIND_HEADER, .name = "no-backward" };
  StGradcheckResult r;
  gboolean ok = st_gradcheck (&kind, NULL, NULL, 0, &t->shape, 1, FALSE, 1, 1e-2, 1e-3,
                              &r, &error);
  printf ("%s, ABI %d: %s\n", st_shape_format (t->shape, buf, sizeof buf), ST_ABI_VERSION,
          error ? error->message : "no error");
  return !ok && g_error_matches (error, ST_ERROR, ST_ERROR_PLUGIN) ? 0 : 1;
}
C
  # A program, unlike a plugin, must find libstrata itself: give it a run path.
  # shellcheck disable=SC2046
  "$CC" -std=c11 -Wall -Wextra -Werror "$tmp/umbrella.c" -o "$tmp/umbrella" \
    $(pkg-config --cflags --libs strata) -Wl,-rpath,"$(pkg-config --variable=libdir strata)" \
    && "$tmp/umbrella"
}
check "a program including only <strata/strata.h> builds and calls st_gradcheck" umbrella

# The error domain has a header of its own, installed and self-contained.
error_header () {
  cat >"$tmp/error.c" <<'C'
#include <strata/error.h>

int
main (void)
{
  return st_error_quark () == ST_ERROR && ST_ERROR_IMAGE == 5 ? 0 : 1;
}
C
  # shellcheck disable=SC2046
  "$CC" -std=c11 -Wall -Wextra -Werror "$tmp/error.c" -o "$tmp/error" \
    $(pkg-config --cflags --libs strata) -Wl,-rpath,"$(pkg-config --variable=libdir strata)" \
    && "$tmp/error"
}
check "a program including only <strata/error.h> builds and knows the ST_ERROR codes" error_header

# ---- Helpers in Python: ELF dynamic entries and PNG pixels -----------------

cat >"$tmp/elf.py" <<'PY'
# elf.py SO: prints a shared object's NEEDED and RPATH/RUNPATH entries
# (readelf is not always installed); fails unless it needs libstrata and
# has no run path.
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF"
e = "<" if data[5] == 1 else ">"
shoff, = struct.unpack_from(e + "Q", data, 0x28)
shentsize, shnum = struct.unpack_from(e + "HH", data, 0x3a)
sections = [struct.unpack_from(e + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
dynamic = [s for s in sections if s[1] == 6][0]          # SHT_DYNAMIC
strtab = sections[dynamic[6]]                            # its sh_link
tags = {}
for i in range(dynamic[5] // 16):
    tag, val = struct.unpack_from(e + "qQ", data, dynamic[4] + i * 16)
    if tag in (1, 15, 29):
        start = strtab[4] + val
        name = {1: "NEEDED", 15: "RPATH", 29: "RUNPATH"}[tag]
        tags.setdefault(name, []).append(data[start:data.index(b"\0", start)].decode())
print(tags)
sys.exit(0 if any(n.startswith("libstrata.so") for n in tags.get("NEEDED", []))
         and "RPATH" not in tags and "RUNPATH" not in tags else 1)
PY

cat >"$tmp/png.py" <<'PY'
# png.py stats FILE: "WIDTH HEIGHT CHANNELS DISTINCT MIN MAX" of an 8-bit
# non-interlaced PNG (what strata writes for 8-bit input);
# png.py same A B: whether two such PNGs hold the same pixels.
import struct, sys, zlib

def decode(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path + ": not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and interlace == 0 and ctype in (0, 2, 4, 6), path + ": unexpected format"
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, ch, b"".join(rows)

if sys.argv[1] == "stats":
    w, h, ch, px = decode(sys.argv[2])
    print(w, h, ch, len(set(px)), min(px), max(px))
else:
    sys.exit(0 if decode(sys.argv[2]) == decode(sys.argv[3]) else 1)
PY

# ---- Build the examples, and two plugins strata must refuse ----------------

ex=$src/examples/plugins
plugins=$tmp/plugins            # threshold.so and scale.so
mixed=$tmp/mixed                # threshold.so and the two to refuse
linked=$tmp/linked              # threshold.so linked to libstrata, no run path
mkdir -p "$plugins" "$mixed" "$linked"

# The README's one-liner, warnings as errors.
# shellcheck disable=SC2046
check "threshold builds with the cc one-liner" \
  "$CC" -Wall -Wextra -Werror -shared -fPIC $(pkg-config --cflags --libs strata) \
    "$ex/threshold/threshold.c" -o "$plugins/threshold.so"
cp "$plugins/threshold.so" "$mixed/" 2>/dev/null

meson_example () {
  meson setup --werror "$tmp/$1-build" "$ex/$1" && ninja -C "$tmp/$1-build"
}
check "threshold builds with its own meson.build" meson_example threshold
check "scale and its gradcheck test build with their own meson.build" meson_example scale
cp "$tmp/scale-build/scale.so" "$plugins/" 2>/dev/null

scale_gradcheck () {
  meson test -C "$tmp/scale-build" --print-errorlogs
  status=$?
  cat "$tmp/scale-build/meson-logs/testlog.txt"
  return $status
}
check "scale's backward passes st_gradcheck (meson test in its build)" scale_gradcheck

# Built here rather than by the calling build: that one may be instrumented.
bad_plugins () {
  # shellcheck disable=SC2046
  "$CC" -Wall -Wextra -Werror -shared -fPIC $(pkg-config --cflags --libs strata) \
    "$src/tests/plugins/bad-abi.c" -o "$mixed/bad-abi.so" \
    && "$CC" -Wall -Wextra -Werror -shared -fPIC "$src/tests/plugins/no-symbol.c" \
         -o "$mixed/no-symbol.so"
}
check "a plugin for another ABI and a shared object without the entry symbol build" bad_plugins

# Libraries after the source: the plugin then names libstrata.so.0 as NEEDED,
# with no run path to find it (the one-liner's order lets the linker drop
# it, leaving st_* undefined).  Either way it loads: strata has libstrata
# loaded already, and the dynamic linker matches NEEDED by soname.
linked_plugin () {
  # shellcheck disable=SC2046
  "$CC" -Wall -Wextra -Werror -shared -fPIC "$ex/threshold/threshold.c" \
    -o "$linked/threshold.so" $(pkg-config --cflags --libs strata) -lm \
    && python3 "$tmp/elf.py" "$linked/threshold.so"
}
check "threshold linked to libstrata: NEEDED libstrata.so, no RPATH or RUNPATH" linked_plugin

# ---- The README's guide, built from the README itself -----------------------

# Every fenced block that follows a "<!-- sdk-snippet: FILE -->" line of
# README.md, appended in order to $guide/FILE: the guide's code is what is
# built and run here, so it cannot drift.
guide=$tmp/readme
extract_snippets () {
  mkdir -p "$guide" && python3 - "$src/README.md" "$guide" <<'PY'
import os, re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
files, i = {}, 0
while i < len(lines):
    m = re.fullmatch(r"<!-- sdk-snippet: ([\w.-]+) -->", lines[i])
    i += 1
    if not m:
        continue
    if i >= len(lines) or not lines[i].startswith("```"):
        sys.exit("README.md:%d: a snippet marker must come right before a fenced block" % i)
    end = i + 1
    while end < len(lines) and not lines[end].startswith("```"):
        end += 1
    files.setdefault(m.group(1), []).append("\n".join(lines[i + 1:end]) + "\n")
    i = end + 1
for name, blocks in sorted(files.items()):
    with open(os.path.join(sys.argv[2], name), "w", encoding="utf-8") as f:
        f.write("\n".join(blocks))
    print("%s: %d block(s)" % (name, len(blocks)))
missing = {"threshold.c", "prelu.c", "test-prelu.c", "build.sh", "run.sh"} - files.keys()
sys.exit("README.md lacks snippets: " + ", ".join(sorted(missing)) if missing else 0)
PY
}
must "the README's marked snippets extract" extract_snippets

# The guide's build lines as written, warnings as errors and at -O0 (where
# no libm call is inlined away), then its test program.
readme_build () {
  (cd "$guide" && sed "s|^cc |$CC -Werror -O0 |" build.sh | sh -ex)
}
check "the README's plugins and test program build without warnings, and the test passes" \
  readme_build

# ---- The installed strata --------------------------------------------------

# list_plugins COMMAND...: runs it into $out, shows it, fails on a non-zero exit.
out=$tmp/plugins.out
list_plugins () {
  "$@" >"$out" 2>&1
  status=$?
  cat "$out"
  [ $status -eq 0 ] || { echo "exit status $status"; return 1; }
}

# has LINE-REGEX...: every pattern matches a line of $out.
has () {
  for pattern in "$@"; do
    grep -q -- "$pattern" "$out" || { echo "no line matches: $pattern"; return 1; }
  done
}

core_kinds () {
  has "^kernel  *filter" "^grayscale  *plumbing" "^add " "^conv2d  *layer" "^dense "
}

own_plugins () {
  list_plugins "$strata" plugins && core_kinds \
    && has "from $plugindir/kernel\.so" && ! has "Not loaded"
}
check "installed strata plugins lists the core kinds, with no environment variable" own_plugins

examples_listed () {
  core_kinds && has "^threshold  *filter" "from $plugins/threshold\.so" \
                    "^scale  *layer" "from $plugins/scale\.so"
}
with_plugin_path () {
  list_plugins env STRATA_PLUGIN_PATH="$plugins" "$strata" plugins && examples_listed
}
check "STRATA_PLUGIN_PATH=DIR strata plugins lists threshold and scale" with_plugin_path

with_plugin_dir () {
  list_plugins "$strata" plugins --plugin-dir "$plugins" && examples_listed
}
check "strata plugins --plugin-dir DIR lists threshold and scale" with_plugin_dir

threshold_params () {
  list_plugins "$strata" plugins threshold --plugin-dir "$plugins" \
    && has "^threshold — " "Category  *filter" "no (inference only)" \
           "^  level  *double" "default: 0\.5" "range: 0 to 1" \
           "^  soft  *double" "default: 0$" "range: at least 0"
}
check "strata plugins threshold prints its parameters" threshold_params

scale_params () {
  list_plugins "$strata" plugins scale --plugin-dir "$plugins" \
    && has "^scale — " "yes (has backward)" "^  bias  *bool" "default: false"
}
check "strata plugins scale prints its parameter and that it is trainable" scale_params

photo=$src/samples/photos/chelsea.png
cat >"$tmp/bw.ini" <<'INI'
[pipeline]
description=Black and white: luma, then a hard threshold

[luma]
type=grayscale

[bw]
type=threshold
level=0.45
INI

# png_stats FILE WANT: FILE's "WIDTH HEIGHT CHANNELS DISTINCT MIN MAX" is WANT
# (a shell pattern).
png_stats () {
  stats=$(python3 "$tmp/png.py" stats "$1") || return 1
  echo "$1: $stats"
  # shellcheck disable=SC2254
  case $stats in
    $2) return 0 ;;
    *) echo "expected: $2"; return 1 ;;
  esac
}

hard_threshold () {
  "$strata" run "$tmp/bw.ini" "$photo" -o "$tmp/bw.png" --quiet --plugin-dir "$plugins" \
    && png_stats "$tmp/bw.png" "451 300 1 2 0 255"
}
check "a pipeline file with grayscale then threshold writes a 0-or-255 gray PNG" hard_threshold

# The guide's run lines, in its folder, with the installed strata on PATH.
readme_run () {
  cp "$photo" "$guide/photo.png" || return 1
  (cd "$guide" && PATH="$prefix/bin:$PATH" sh -ex run.sh) >"$out" 2>&1
  status=$?
  cat "$out"
  [ $status -eq 0 ] && has "^threshold  *filter" "^prelu  *layer" "^  level  *double" \
    && png_stats "$guide/bw.png" "451 300 1 2 0 255"
}
check "the README's run lines list and run its plugins (STRATA_PLUGIN_PATH with ':')" readme_run

soft_threshold () {
  "$strata" run "grayscale ! threshold level=0.45 soft=0.3" "$photo" -o "$tmp/soft.png" \
    --quiet --plugin-dir "$plugins" || return 1
  stats=$(python3 "$tmp/png.py" stats "$tmp/soft.png") || return 1
  echo "$stats"
  # shellcheck disable=SC2086 # split into its six numbers
  set -- $stats
  [ "$1 $2 $3" = "451 300 1" ] && [ "$4" -gt 100 ]
}
check "threshold soft=0.3 gives a ramp: many gray levels" soft_threshold

# An untrained scale is the identity (weight 1, bias 0): same pixels back.
scale_identity () {
  "$strata" run "scale bias=true" "$photo" -o "$tmp/scale.png" --quiet --random-weights \
    --plugin-dir "$plugins" && python3 "$tmp/png.py" same "$photo" "$tmp/scale.png"
}
check "an untrained scale stage runs in a pipeline and returns the image unchanged" \
  scale_identity

refused () {
  list_plugins "$strata" plugins --plugin-dir "$mixed" || return 1
  abi=$(sed -n 's/.*plugin ABI version \([0-9]*\)\.$/\1/p' "$out")
  [ -n "$abi" ] || { echo "no ABI version line"; return 1; }
  core_kinds && has "^threshold  *filter" "^Not loaded:" \
    "^  $mixed/bad-abi\.so: plugin ABI version $((abi + 1)), this strata has ABI version $abi" \
    "^  $mixed/no-symbol\.so: no 'strata_plugin_info' symbol" \
    && ! has "^bad-abi "
}
check "broken plugins: exit 0, good ones listed, each bad one named with its reason" \
  refused

# Two providers of one kind: the higher rank wins, and both are listed.
ranked () {
  mkdir -p "$tmp/ranked" || return 1
  # shellcheck disable=SC2046
  "$CC" -Wall -Wextra -Werror -Wno-unused-parameter -shared -fPIC \
    $(pkg-config --cflags strata) "$src/tests/plugins/rank-invert.c" \
    -o "$tmp/ranked/rank-invert.so" || return 1
  list_plugins "$strata" plugins invert --plugin-dir "$tmp/ranked" || return 1
  has "File  *$tmp/ranked/rank-invert\.so" "Rank  *10" "Also in  *.*/invert\.so (rank 0)" \
    || return 1
  "$strata" run invert "$photo" -o "$tmp/ranked.png" --quiet --plugin-dir "$tmp/ranked" \
    && png_stats "$tmp/ranked.png" "451 300 3 1 64 64"
}
check "of two plugins providing 'invert', the higher rank runs; both are listed" ranked

linked_loads () {
  list_plugins "$strata" plugins --plugin-dir "$linked" \
    && has "from $linked/threshold\.so" && ! has "Not loaded"
}
check "the plugin linked to libstrata without a run path loads" linked_loads

# Last: it changes the install.  The example's meson.build installs into
# pkg-config's plugindir, where strata looks with no option.
installed_example () {
  meson install -C "$tmp/threshold-build" --quiet \
    && list_plugins "$strata" plugins && has "from $plugindir/threshold\.so"
}
check "meson install of the threshold example puts it where strata finds it unaided" \
  installed_example

echo "1..$n"
[ "$failures" -eq 0 ]
