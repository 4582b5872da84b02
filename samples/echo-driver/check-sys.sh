#!/usr/bin/env bash
# Builds echo_driver.sys for x86_64-pc-windows-msvc and checks it is a loadable kernel-mode image:
# PE32+, machine AMD64, subsystem NATIVE, entry point = DriverEntry, marked CET shadow stack
# compatible (/CETCOMPAT), imports only from ntoskrnl.exe and NETIO.SYS (HAL.dll allowed), every
# import exported by the real module according to Debian mingw-w64's import libraries, and every
# import listed in kernel-exports.txt with the Windows that introduced it, none newer than the
# oldest Windows the driver claims to support (Windows 7).
#
# Usage: samples/echo-driver/check-sys.sh [OUT_DIR]   (default OUT_DIR: target/echo-driver-sys)
#        samples/echo-driver/check-sys.sh --sys PATH [--exports FILE]
#   --sys PATH      check this image (your own driver's .sys or .dll) instead of building the echo driver
#   --exports FILE  the list of allowed imports (default: kernel-exports.txt beside this script)
# Needs: rustup target x86_64-pc-windows-msvc, llvm-readobj and llvm-nm (Debian: llvm), and
# mingw-w64-x86-64-dev for /usr/x86_64-w64-mingw32/lib/lib{ntoskrnl,netio,hal}.a.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target=x86_64-pc-windows-msvc
given_sys=""
exports_list="$here/kernel-exports.txt"
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sys) given_sys="$(realpath "$2")"; shift 2 ;;
        --exports) exports_list="$(realpath "$2")"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) out="$1"; shift ;;
    esac
done
out="${out:-$root/target/echo-driver-sys}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mingw_lib=/usr/x86_64-w64-mingw32/lib

fail() { echo "check-sys: FAIL: $*" >&2; exit 1; }
ok() { echo "check-sys: ok: $*"; }

for tool in llvm-readobj llvm-nm; do
    command -v "$tool" >/dev/null || fail "$tool not found (apt-get install llvm)"
done
for lib in ntoskrnl netio hal; do
    [ -f "$mingw_lib/lib$lib.a" ] || fail "$mingw_lib/lib$lib.a not found (apt-get install mingw-w64-x86-64-dev)"
done

if [ -n "$given_sys" ]; then
    sys="$given_sys"
    [ -f "$sys" ] || fail "$sys not found"
    ok "checking $sys ($(stat -c %s "$sys") bytes)"
else
    # --lib: the package's host program (src/main.rs) is not part of the driver.
    # A link error (an undefined symbol) fails the build here.
    (cd "$root" && cargo build --release --locked -p echo-driver --lib --target "$target")
    dll="$target_dir/$target/release/echo_driver.dll"
    [ -f "$dll" ] || fail "$dll was not produced"
    mkdir -p "$out"
    sys="$out/echo_driver.sys"
    cp "$dll" "$sys"
    ok "built $sys ($(stat -c %s "$sys") bytes)"
fi

headers="$(llvm-readobj --file-headers "$sys")"
field() { grep -m1 -E "^ *$1:" <<<"$headers" | sed -E "s/^ *$1: *//"; }

machine="$(field Machine)"
[[ "$machine" == IMAGE_FILE_MACHINE_AMD64* ]] || fail "machine is '$machine', expected IMAGE_FILE_MACHINE_AMD64"
ok "machine $machine"

magic="$(grep -E '^ *Magic: 0x' <<<"$headers" | sed -E 's/^ *Magic: //')"
[ "$magic" = "0x20B" ] || fail "optional header magic is '$magic', expected 0x20B (PE32+)"
ok "PE32+ (magic $magic)"

subsystem="$(field Subsystem)"
[[ "$subsystem" == IMAGE_SUBSYSTEM_NATIVE* ]] || fail "subsystem is '$subsystem', expected IMAGE_SUBSYSTEM_NATIVE"
ok "subsystem $subsystem"

entry="$(field AddressOfEntryPoint)"
exports="$(llvm-readobj --coff-exports "$sys")"
driver_entry="$(grep -A2 -E 'Name: DriverEntry$' <<<"$exports" | grep -m1 -E 'RVA:' | sed -E 's/^ *RVA: *//')"
[ -n "$driver_entry" ] || fail "DriverEntry is not among the image's symbols"
[ $((entry)) -eq $((driver_entry)) ] || fail "entry point $entry is not DriverEntry ($driver_entry)"
ok "entry point $entry = DriverEntry"

# The optional header's CheckSum (llvm-readobj does not print it): e_lfanew + 4 (signature) + 20
# (file header) + 64. The kernel's loader verifies it for drivers; /RELEASE makes the linker set it.
lfanew="$(od -An -tu4 -j60 -N4 "$sys" | tr -d ' ')"
checksum="$(od -An -tu4 -j$((lfanew + 88)) -N4 "$sys" | tr -d ' ')"
[ "$checksum" -ne 0 ] || fail "PE checksum is 0 (link with /RELEASE): the kernel's loader checks it"
if command -v python3 >/dev/null; then
    # The PE checksum algorithm: 16-bit one's-complement-style sum of the file with the CheckSum
    # field taken as 0, folded, plus the file length.
    computed="$(python3 - "$sys" $((lfanew + 88)) <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
at = int(sys.argv[2])
data[at:at + 4] = b"\0\0\0\0"
if len(data) % 2:
    data += b"\0"
total = 0
for i in range(0, len(data), 2):
    total += data[i] | data[i + 1] << 8
    total = (total & 0xFFFF) + (total >> 16)
print((total & 0xFFFF) + len(open(sys.argv[1], "rb").read()))
PY
)"
    [ "$computed" -eq "$checksum" ] || fail "PE checksum $checksum differs from the computed $computed"
fi
ok "PE checksum $(printf '0x%X' "$checksum") (verified)"

# /CETCOMPAT: Kernel-mode Hardware-enforced Stack Protection (kernel shadow stacks) only runs drivers
# whose image carries IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT, in an extended DLL characteristics
# entry (type 20) of the debug directory.
debug_dir="$(llvm-readobj --coff-debug-directory "$sys")"
grep -qE '^ *Type: ExtendedDLLCharacteristics \(0x14\)$' <<<"$debug_dir" \
    || fail "no extended DLL characteristics debug directory entry (link with /CETCOMPAT)"
grep -qE '^ *IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT \(0x1\)$' <<<"$debug_dir" \
    || fail "IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT is not set (link with /CETCOMPAT)"
ok "CET shadow stack compatible (IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT)"

# Imports: "Name: module" lines followed by "Symbol: name (hint)" lines.
imports="$(llvm-readobj --coff-imports "$sys")"
modules="$(grep -E '^ *Name: ' <<<"$imports" | sed -E 's/^ *Name: *//')"
[ -n "$modules" ] || fail "no imports found"

# The kernel exports the driver may import, each with the Windows that introduced it.
claimed=7 # the oldest Windows the driver claims to support
versions=(2000 xp xp-sp2 vista 7 8 8.1 10 10-2004)
declare -A version_name=(
    [2000]="Windows 2000" [xp]="Windows XP" [xp-sp2]="Windows XP SP2" [vista]="Windows Vista"
    [7]="Windows 7" [8]="Windows 8" [8.1]="Windows 8.1" [10]="Windows 10" [10-2004]="Windows 10 version 2004"
)
rank() {
    local i
    for i in "${!versions[@]}"; do
        [ "${versions[$i]}" = "$1" ] && { echo "$i"; return; }
    done
    echo -1
}
[ -f "$exports_list" ] || fail "$exports_list not found"
declare -A since
while read -r list_module list_export list_version _; do
    case "$list_module" in '' | '#'*) continue ;; esac
    [ "$(rank "$list_version")" -ge 0 ] || fail "$exports_list: unknown version '$list_version' of $list_export"
    since["${list_module,,}:$list_export"]="$list_version"
done <"$exports_list"
needs=0 # rank of the newest import: the oldest Windows that has every import

count=0
while read -r module; do
    lower="${module,,}"
    case "$lower" in
        ntoskrnl.exe) lib=ntoskrnl ;;
        netio.sys) lib=netio ;;
        hal.dll) lib=hal ;;
        *) fail "import from '$module': only ntoskrnl.exe, NETIO.SYS and HAL.dll are allowed" ;;
    esac
    exported="$(llvm-nm "$mingw_lib/lib$lib.a" 2>/dev/null | awk '$2 == "T" || $2 == "I" { print $3 }' | sed -E 's/^__imp_//' | sort -u)"
    symbols="$(awk -v m="$module" '
        /^ *Name: / { current = $2 }
        /^ *Symbol: / && current == m { print $2 }' <<<"$imports")"
    while read -r symbol; do
        [ -n "$symbol" ] || continue
        count=$((count + 1))
        version="${since[$lower:$symbol]:-}"
        [ -n "$version" ] || fail "$module!$symbol is not in $exports_list: add it with the Windows version its DDI page gives"
        if [ "$(rank "$version")" -gt "$(rank "$claimed")" ]; then
            fail "$module!$symbol needs ${version_name[$version]}, newer than the claimed ${version_name[$claimed]}: look it up at run time with MmGetSystemRoutineAddress (see nt::resolve_optional_exports) instead of importing it"
        fi
        [ "$(rank "$version")" -gt "$needs" ] && needs="$(rank "$version")"
        grep -qx -- "$symbol" <<<"$exported" \
            || fail "$module!$symbol is not exported according to mingw-w64's lib$lib.a"
    done <<<"$symbols"
    ok "imports from $module: $(wc -w <<<"$symbols") symbols, each listed and exported by $module"
done <<<"$modules"
for optional in ExAllocatePool2 KeQueryInterruptTimePrecise; do
    ! grep -qE "^ *Symbol: $optional " <<<"$imports" || fail "$optional is imported"
done
ok "neither ExAllocatePool2 nor KeQueryInterruptTimePrecise is imported (looked up at run time: nt::resolve_optional_exports)"
ok "the import table needs ${version_name[${versions[$needs]}]} or later (claimed minimum: ${version_name[$claimed]})"
ok "$count imports checked; $sys is a kernel-mode driver image"
