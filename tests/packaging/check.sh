#!/usr/bin/env bash
# Packaging checks: install lockstock into a private prefix, then build and
# run a tiny consumer three ways (pkg-config, CMake find_package, meson
# subproject), check that the shared library exports exactly the LKS_API
# functions of the public headers, that docs/API.md is current and that the
# README's first program compiles and the guide's fragments do. Prints TAP
# for meson test.
# Usage: tests/packaging/check.sh SOURCE_DIR
set -uo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/lks-packaging.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$work/$name.log" 2>&1; then
		pass=$((pass + 1))
		echo "ok $((pass + fail)) - $name"
	else
		fail=$((fail + 1))
		echo "not ok $((pass + fail)) - $name"
		tail -30 "$work/$name.log" | sed 's/^/# /'
	fi
}

prefix="$work/prefix"
install_lib() {
	meson setup "$work/build" "$src" --prefix="$prefix" --libdir=lib -Dtests=disabled \
		-Dexamples=false -Dbuildtype=release &&
		ninja -C "$work/build" install
}
by_pkg_config() {
	export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
	cc -o "$work/consumer-pc" "$src/tests/packaging/consumer.c" $(pkg-config --cflags --libs lockstock) &&
		LD_LIBRARY_PATH="$prefix/lib" "$work/consumer-pc"
}
by_cmake() {
	cmake -S "$src/tests/packaging/consumer-cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" &&
		cmake --build "$work/cmake" &&
		LD_LIBRARY_PATH="$prefix/lib" "$work/cmake/consumer"
}
by_meson_subproject() {
	local p="$work/meson-consumer"
	mkdir -p "$p/subprojects" &&
		cp "$src/tests/packaging/consumer-meson/meson.build" "$p/" &&
		cp "$src/tests/packaging/consumer.c" "$work/" &&
		ln -s "$src" "$p/subprojects/lockstock" &&
		meson setup "$p/build" "$p" && ninja -C "$p/build" && "$p/build/consumer"
}
# the exported functions are the LKS_API declarations, no more, no less
exported_symbols() {
	local so
	so=$(ls "$prefix"/lib/liblockstock.so.*.*.* | head -1)
	objdump -p "$so" | grep -q 'SONAME *liblockstock.so.1' || { echo "unexpected soname"; return 1; }
	nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort >"$work/exported"
	cat "$prefix"/include/lockstock*.h | grep -o '^LKS_API [^(]*(' |
		sed -E 's/.*[ *](lks_[a-z0-9_]+)\($/\1/' | sort >"$work/declared"
	echo "exported but not declared:"; comm -23 "$work/exported" "$work/declared"
	echo "declared but not exported:"; comm -13 "$work/exported" "$work/declared"
	[ "$(wc -l <"$work/declared")" -gt 30 ] && cmp -s "$work/exported" "$work/declared"
}

# the README's first program compiles and links as it stands, warnings as
# errors, against the installed library
readme_program() {
	export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
	awk '/^```c$/ {on = 1; next} on && /^```$/ {exit} on' "$src/README.md" >"$work/readme.c" &&
		[ "$(wc -l <"$work/readme.c")" -gt 20 ] &&
		cc -std=c11 -Wall -Wextra -Werror -o "$work/readme" "$work/readme.c" \
			$(pkg-config --cflags --libs lockstock)
}

# every C fragment of docs/GUIDE.md compiles against the installed headers
# (scripts/guidecode.py makes each a function; a wrong name or signature
# fails; fragments that only sketch a callback may leave out its return)
guide_fragments() {
	export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
	python3 "$src/scripts/guidecode.py" "$src/docs/GUIDE.md" "$work/guide.c" &&
		cc -std=c11 -Wall -Werror -Wno-unused-variable -Wno-unused-but-set-variable \
			-Wno-unused-function -Wno-return-type -Wno-uninitialized -Wno-maybe-uninitialized \
			-c -o "$work/guide.o" "$work/guide.c" $(pkg-config --cflags lockstock)
}

# docs/API.md is what the headers say now
api_reference_current() {
	python3 "$src/scripts/apiref.py" "$work/API.md" "$src"/include/lockstock.h \
		"$src"/include/lockstock-pg.h "$src"/include/lockstock-mysql.h &&
		diff -u "$src/docs/API.md" "$work/API.md"
}

# the installed command runs from its prefix as installed: no ldconfig,
# no LD_LIBRARY_PATH (#30 item 2)
installed_command() {
	local version help
	version=$(env -u LD_LIBRARY_PATH "$prefix/bin/lockstock" --version) &&
		help=$(env -u LD_LIBRARY_PATH "$prefix/bin/lockstock" help run) &&
		echo "$version" && [[ $version == "lockstock "* && $help == *once-per* ]]
}
# a default `meson setup` builds the library, the headers, the command and
# the examples, nothing else (tests, benchmarks and fuzzers are the test
# command's); and installs no static archive whose pkg-config --static
# could not link (Debian's libpq.pc)
default_setup() {
	meson setup "$work/default" "$src" >/dev/null &&
		meson introspect --targets "$work/default" | python3 -c '
import json, sys
names = sorted(t["name"] for t in json.load(sys.stdin))
print("targets:", " ".join(names))
extra = [n for n in names if "test" in n or "bench" in n or n.startswith("fuzz") or n in ("unit", "integration")]
print("not for a default build:", extra)
sys.exit(1 if extra or "lockstock" not in names else 0)'
}
no_static_archive() {
	[ ! -e "$prefix/lib/liblockstock.a" ] && ls "$prefix"/lib/liblockstock.so.* >/dev/null
}

echo "1..11"
check install install_lib
check pkg_config by_pkg_config
check cmake_find_package by_cmake
check meson_subproject by_meson_subproject
check exported_symbols exported_symbols
check api_reference_current api_reference_current
check readme_program readme_program
check guide_fragments guide_fragments
check installed_command installed_command
check default_setup default_setup
check no_static_archive no_static_archive
[ "$fail" -eq 0 ]
