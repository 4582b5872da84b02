#!/usr/bin/env bash
# Builds echo_driver.sys (or another driver package's .sys: --package) for x86_64-pc-windows-msvc and checks it is a loadable kernel-mode image:
# PE32+, machine AMD64, subsystem NATIVE, entry point = DriverEntry, marked CET shadow stack
# compatible (/CETCOMPAT), imports only from ntoskrnl.exe and NETIO.SYS (HAL.dll allowed), every
# import exported by the real module according to Debian mingw-w64's import libraries, and every
# import listed in kernel-exports.txt with the Windows that introduced it, none newer than the
# oldest Windows the driver claims to support (Windows 7).
#
# Usage: samples/echo-driver/check-sys.sh [--target TRIPLE] [--package NAME] [OUT_DIR]   (default OUT_DIR: target/NAME-sys)
#        samples/echo-driver/check-sys.sh [--target TRIPLE] --sys PATH [--exports FILE]
#   --target TRIPLE  x86_64-pc-windows-msvc (the default) or aarch64-pc-windows-msvc (ARM64: see below)
#   --package NAME   build and check this workspace driver package instead of echo-driver (e.g. report-client)
#   --sys PATH       check this image (your own driver's .sys or .dll) instead of building the echo driver
#   --exports FILE   the list of allowed imports (default: kernel-exports.txt beside this script)
# Needs: rustup target x86_64-pc-windows-msvc, llvm-readobj and llvm-nm (Debian: llvm), and
# mingw-w64-x86-64-dev for /usr/x86_64-w64-mingw32/lib/lib{ntoskrnl,netio,hal}.a.
#
# ARM64 (--target aarch64-pc-windows-msvc; rustup target aarch64-pc-windows-msvc, llvm-objdump):
# machine ARM64, PE32+, subsystem NATIVE, entry point, checksum, DYNAMIC_BASE and NX_COMPAT, no CET
# flag (x64-only), no instruction naming x18 (the kernel's KPCR register), claimed minimum Windows 10.
# No ARM64 export list of ntoskrnl.exe, HAL.dll or NETIO.SYS is available here (mingw-w64 ships
# none, Debian has no ARM64 mingw-w64 package), so an import is checked against the x64 lists as a
# proxy, except those in kernel-exports-arm64.txt (ARM64-only, with their sources), which no
# export table checks. The image is never loaded: no ARM64 Windows or Wine here.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target=x86_64-pc-windows-msvc
given_sys=""
exports_list="$here/kernel-exports.txt"
arm64_list="$here/kernel-exports-arm64.txt"
out=""
package=echo-driver
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        --package) package="$2"; shift 2 ;;
        --sys) given_sys="$(realpath "$2")"; shift 2 ;;
        --exports) exports_list="$(realpath "$2")"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) out="$1"; shift ;;
    esac
done
case "$target" in
    x86_64-pc-windows-msvc) arm64=false; default_out="$root/target/$package-sys" ;;
    aarch64-pc-windows-msvc) arm64=true; default_out="$root/target/$package-sys-aarch64" ;;
    *) echo "check-sys: FAIL: unknown --target '$target' (x86_64-pc-windows-msvc or aarch64-pc-windows-msvc)" >&2; exit 1 ;;
esac
out="${out:-$default_out}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mingw_lib=/usr/x86_64-w64-mingw32/lib

fail() { echo "check-sys: FAIL: $*" >&2; exit 1; }
ok() { echo "check-sys: ok: $*"; }

tools=(llvm-readobj llvm-nm)
$arm64 && tools+=(llvm-objdump)
for tool in "${tools[@]}"; do
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
    (cd "$root" && cargo build --release --locked -p "$package" --lib --target "$target")
    crate="${package//-/_}"
    dll="$target_dir/$target/release/$crate.dll"
    [ -f "$dll" ] || fail "$dll was not produced"
    mkdir -p "$out"
    sys="$out/$crate.sys"
    cp "$dll" "$sys"
    ok "built $sys ($(stat -c %s "$sys") bytes)"
fi

headers="$(llvm-readobj --file-headers "$sys")"
field() { grep -m1 -E "^ *$1:" <<<"$headers" | sed -E "s/^ *$1: *//"; }

machine="$(field Machine)"
expected_machine=IMAGE_FILE_MACHINE_AMD64
$arm64 && expected_machine=IMAGE_FILE_MACHINE_ARM64 # 0xAA64
[[ "$machine" == "$expected_machine "* ]] || fail "machine is '$machine', expected $expected_machine"
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

debug_dir="$(llvm-readobj --coff-debug-directory "$sys")"
if $arm64; then
    # ASLR cannot be turned off on ARM64 (MSVC's /DYNAMICBASE page: "/DYNAMICBASE:NO isn't supported
    # for these targets"), and a kernel image is never executable data.
    for flag in DYNAMIC_BASE NX_COMPAT; do
        grep -qE "^ *IMAGE_DLL_CHARACTERISTICS_$flag \(" <<<"$headers" \
            || fail "IMAGE_DLL_CHARACTERISTICS_$flag is not set"
    done
    ok "DLL characteristics DYNAMIC_BASE and NX_COMPAT"
    # /CETCOMPAT is x86/x64-only (MSVC's /CETCOMPAT page); wdm-async-driver-runtime leaves it out on ARM64.
    ! grep -qE '^ *Type: ExtendedDLLCharacteristics \(0x14\)$' <<<"$debug_dir" \
        || fail "the image carries extended DLL characteristics (CET is x64-only: do not link with /CETCOMPAT)"
    ok "no CET flag (x64-only)"
    # In kernel mode x18 holds the processor's KPCR: code that writes it corrupts the kernel, and code
    # that reads it depends on KPCR offsets this project does not use (IRQL is read through HAL.dll).
    x18="$(llvm-objdump -d --no-show-raw-insn "$sys" | grep -cE '\b[xw]18\b' || true)"
    [ "$x18" -eq 0 ] || fail "$x18 instructions name x18/w18, the kernel's KPCR register"
    ok "no instruction names x18 (the KPCR register)"
else
# /CETCOMPAT: Kernel-mode Hardware-enforced Stack Protection (kernel shadow stacks) only runs drivers
# whose image carries IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT, in an extended DLL characteristics
# entry (type 20) of the debug directory.
grep -qE '^ *Type: ExtendedDLLCharacteristics \(0x14\)$' <<<"$debug_dir" \
    || fail "no extended DLL characteristics debug directory entry (link with /CETCOMPAT)"
grep -qE '^ *IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT \(0x1\)$' <<<"$debug_dir" \
    || fail "IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT is not set (link with /CETCOMPAT)"
ok "CET shadow stack compatible (IMAGE_DLL_CHARACTERISTICS_EX_CET_COMPAT)"
fi

# Imports: "Name: module" lines followed by "Symbol: name (hint)" lines.
imports="$(llvm-readobj --coff-imports "$sys")"
modules="$(grep -E '^ *Name: ' <<<"$imports" | sed -E 's/^ *Name: *//')"
[ -n "$modules" ] || fail "no imports found"

# The kernel exports the driver may import, each with the Windows that introduced it.
claimed=7 # the oldest Windows the driver claims to support
$arm64 && claimed=10 # the first Windows for ARM64 (Windows 10 version 1709)
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
declare -A arm64_only
if $arm64; then
    [ -f "$arm64_list" ] || fail "$arm64_list not found"
    while read -r list_module list_export list_version _; do
        case "$list_module" in '' | '#'*) continue ;; esac
        [ "$(rank "$list_version")" -ge 0 ] || fail "$arm64_list: unknown version '$list_version' of $list_export"
        since["${list_module,,}:$list_export"]="$list_version"
        arm64_only["${list_module,,}:$list_export"]=1
    done <"$arm64_list"
fi
needs=0 # rank of the newest import: the oldest Windows that has every import

count=0
only=0 # per module: imports in the ARM64-only list
only_total=0
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
        if [ -n "${arm64_only[$lower:$symbol]:-}" ]; then
            only=$((only + 1))
            continue
        fi
        grep -qx -- "$symbol" <<<"$exported" \
            || fail "$module!$symbol is not exported according to mingw-w64's lib$lib.a"
    done <<<"$symbols"
    if $arm64; then
        ok "imports from $module: $(wc -w <<<"$symbols") symbols, each listed; $(($(wc -w <<<"$symbols") - only)) exported by the x64 $module (a proxy: no ARM64 export list here), $only ARM64-only per $(basename "$arm64_list") (checked against no export table)"
        only_total=$((only_total + only))
        only=0
    else
        ok "imports from $module: $(wc -w <<<"$symbols") symbols, each listed and exported by $module"
    fi
done <<<"$modules"
for optional in ExAllocatePool2 KeQueryInterruptTimePrecise; do
    ! grep -qE "^ *Symbol: $optional " <<<"$imports" || fail "$optional is imported"
done
ok "neither ExAllocatePool2 nor KeQueryInterruptTimePrecise is imported (looked up at run time: nt::resolve_optional_exports)"
ok "the import table needs ${version_name[${versions[$needs]}]} or later (claimed minimum: ${version_name[$claimed]})"
ok "$count imports checked; $sys is a kernel-mode driver image"
if $arm64; then
    echo "check-sys: NOT checked (ARM64): that ntoskrnl.exe, HAL.dll and NETIO.SYS for ARM64 export these names (the x64 lists stand in; $only_total ARM64-only imports rest on the sources in $(basename "$arm64_list")); that the image loads and runs (no ARM64 Windows or Wine here)"
fi
