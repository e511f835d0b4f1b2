#!/usr/bin/env bash
# Install (or uninstall) streamhub as a systemd service: the binary, the unit, the
# sysusers.d/tmpfiles.d snippets, /etc/streamhub/streamhub.toml (never overwritten),
# /var/lib/streamhub and /srv/media. See docs/DEPLOY.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--bin PATH] [--enable] [--avahi]
       scripts/install.sh --uninstall [--purge] [--prefix DIR] [--destdir DIR]

  --prefix DIR   installation prefix (default /usr); the binary goes to DIR/bin
  --destdir DIR  stage into DIR instead of / (packaging, tests); no system changes
  --bin PATH     binary to install (default target/release/streamhub, built with
                 `cargo build --release --locked` only when missing)
  --enable       on a live systemd system, also `systemctl enable --now streamhub`
  --avahi        also install the Avahi service file to /etc/avahi/services/
  --uninstall    remove what was installed; keeps /etc/streamhub and /var/lib/streamhub
  --purge        with --uninstall: remove /etc/streamhub and /var/lib/streamhub too
                 (never the media in /srv/media, never the streamhub user)

On a live system (no --destdir, as root, systemd running) it runs systemd-sysusers,
systemd-tmpfiles --create and systemctl daemon-reload; it never starts the service
unless --enable is given.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/usr
DESTDIR=
BIN=
ENABLE=0
AVAHI=0
UNINSTALL=0
PURGE=0

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --destdir) need_arg "$@"; DESTDIR=$2; shift 2 ;;
        --destdir=*) DESTDIR=${1#*=}; shift ;;
        --bin) need_arg "$@"; BIN=$2; shift 2 ;;
        --bin=*) BIN=${1#*=}; shift ;;
        --enable) ENABLE=1; shift ;;
        --avahi) AVAHI=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[[ $PREFIX == /* ]] || die "--prefix must be an absolute path, got '$PREFIX'"
PREFIX=${PREFIX%/}
[[ -n $PREFIX ]] || die "--prefix / is not supported; use /usr or /usr/local"
if [[ -n $DESTDIR ]]; then
    mkdir -p "$DESTDIR" || die "cannot create --destdir $DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
fi
[[ $PURGE == 0 || $UNINSTALL == 1 ]] || die "--purge only goes with --uninstall"
[[ $UNINSTALL == 0 || ($ENABLE == 0 && -z $BIN) ]] || die "--enable/--bin make no sense with --uninstall"

# systemd looks in /usr/lib for units, users and tmpfiles of packages under /usr; other
# prefixes (/usr/local, /opt/...) use /lib (the same directory on merged-/usr systems).
if [[ $PREFIX == /usr ]]; then SYSTEMD_LIB=/usr/lib; else SYSTEMD_LIB=/lib; fi

BIN_DST=$DESTDIR$PREFIX/bin/streamhub
UNIT_DST=$DESTDIR$SYSTEMD_LIB/systemd/system/streamhub.service
SYSUSERS_DST=$DESTDIR$SYSTEMD_LIB/sysusers.d/streamhub.conf
TMPFILES_DST=$DESTDIR$SYSTEMD_LIB/tmpfiles.d/streamhub.conf
DOC_DIR=$DESTDIR$PREFIX/share/doc/streamhub
SHARE_DIR=$DESTDIR$PREFIX/share/streamhub
MANIFEST=$SHARE_DIR/installed-files
AVAHI_DST=$DESTDIR/etc/avahi/services/streamhub.service
CONF_DIR=$DESTDIR/etc/streamhub
CONF=$CONF_DIR/streamhub.toml
STATE_DIR=$DESTDIR/var/lib/streamhub
MEDIA_DIR=$DESTDIR/srv/media

# Live mode: changing the running system (users, tmpfiles, systemd's unit cache).
LIVE=0
if [[ -z $DESTDIR ]]; then
    [[ $EUID -eq 0 ]] || die "installing into the running system needs root (sudo $0 ...), or pass --destdir DIR"
    if [[ -d /run/systemd/system ]]; then
        LIVE=1
    else
        log "systemd is not running here: files only, no sysusers/tmpfiles/daemon-reload"
    fi
fi

uninstall() {
    local files=()
    if [[ -f $MANIFEST ]]; then
        mapfile -t files < "$MANIFEST"
    else
        log "no $MANIFEST: removing the default file list"
        files=("$PREFIX/bin/streamhub" "$SYSTEMD_LIB/systemd/system/streamhub.service"
            "$SYSTEMD_LIB/sysusers.d/streamhub.conf" "$SYSTEMD_LIB/tmpfiles.d/streamhub.conf")
    fi
    if [[ $LIVE == 1 ]]; then
        systemctl disable --now streamhub.service 2>/dev/null || true
    fi
    local f
    for f in "${files[@]}"; do
        [[ -n $f ]] || continue
        if [[ -e $DESTDIR$f || -L $DESTDIR$f ]]; then
            rm -f -- "$DESTDIR$f"
            log "removed $DESTDIR$f"
        fi
    done
    rm -f -- "$MANIFEST"
    rm -rf -- "$DOC_DIR"
    rmdir --ignore-fail-on-non-empty -- "$SHARE_DIR" 2>/dev/null || true
    if [[ $PURGE == 1 ]]; then
        rm -rf -- "$CONF_DIR" "$STATE_DIR"
        log "purged $CONF_DIR and $STATE_DIR"
    else
        log "kept configuration $CONF_DIR and state $STATE_DIR (--purge removes them)"
    fi
    log "kept $MEDIA_DIR (your media) and the streamhub user"
    if [[ $LIVE == 1 ]]; then
        systemctl daemon-reload
    fi
    log "uninstalled"
}

if [[ $UNINSTALL == 1 ]]; then
    uninstall
    exit 0
fi

# --- install ---
for f in systemd/streamhub.service systemd/sysusers.d/streamhub.conf \
    systemd/tmpfiles.d/streamhub.conf config/avahi/streamhub.service; do
    [[ -f $ROOT/$f ]] || die "missing $ROOT/$f (run from a streamhub checkout)"
done

if [[ -z $BIN ]]; then
    BIN=$ROOT/target/release/streamhub
    if [[ ! -x $BIN ]]; then
        command -v cargo >/dev/null || die "$BIN is missing and cargo is not installed; pass --bin PATH"
        log "$BIN is missing: building it (cargo build --release --locked)"
        (cd "$ROOT" && cargo build --release --locked) || die "cargo build failed"
    fi
fi
[[ -f $BIN && -x $BIN ]] || die "--bin $BIN is not an executable file"

TMP=$(mktemp -d)
trap 'rm -rf -- "$TMP"' EXIT
# The real paths go into the file, not only into the unit: the CLI (`streamhub user add …`)
# reads the same file, so on an installed box it finds the service's database without flags.
"$BIN" config default --data-dir /var/lib/streamhub --media-root /srv/media > "$TMP/streamhub.toml" ||
    die "$BIN config default failed: is it a streamhub binary for this machine?"

INSTALLED=()
put() { # put MODE SRC DST: install one file and remember it for --uninstall
    install -D -m "$1" -- "$2" "$3" || die "cannot install $3"
    INSTALLED+=("${3#"$DESTDIR"}")
    log "installed $3"
}

put 0755 "$BIN" "$BIN_DST"

# The unit names /usr/bin/streamhub; another prefix gets its own path written in.
cp -- "$ROOT/systemd/streamhub.service" "$TMP/streamhub.service"
if [[ $PREFIX != /usr ]]; then
    sed -i "s|/usr/bin/streamhub|$PREFIX/bin/streamhub|g" "$TMP/streamhub.service"
    log "unit: ExecStart points at $PREFIX/bin/streamhub"
fi
put 0644 "$TMP/streamhub.service" "$UNIT_DST"
put 0644 "$ROOT/systemd/sysusers.d/streamhub.conf" "$SYSUSERS_DST"
put 0644 "$ROOT/systemd/tmpfiles.d/streamhub.conf" "$TMPFILES_DST"

for f in docs/DEPLOY.md config/streamhub.env.example \
    systemd/streamhub.service.d/nfs-media.conf.example; do
    [[ -f $ROOT/$f ]] && put 0644 "$ROOT/$f" "$DOC_DIR/$(basename "$f")"
done
put 0644 "$ROOT/config/avahi/streamhub.service" "$DOC_DIR/avahi-streamhub.service"
if [[ $AVAHI == 1 ]]; then
    put 0644 "$ROOT/config/avahi/streamhub.service" "$AVAHI_DST"
fi

# Configuration: never overwrite an existing (possibly edited) file.
install -d -m 0755 "$CONF_DIR"
if [[ ! -e $CONF ]]; then
    install -m 0644 "$TMP/streamhub.toml" "$CONF"
    log "installed $CONF (the defaults; edit it, then systemctl restart streamhub)"
elif cmp -s "$TMP/streamhub.toml" "$CONF"; then
    log "kept $CONF (already the current defaults)"
else
    install -m 0644 "$TMP/streamhub.toml" "$CONF.new"
    log "kept your $CONF; the new defaults are in $CONF.new (compare: diff -u $CONF $CONF.new)"
fi
# Older installs kept the built-in relative paths in the file and set the real ones in the
# unit; the unit no longer does, so such a file would point the service at an empty database.
if ! grep -q '^data_dir = "/' "$CONF" || ! grep -q '^media_root = "/' "$CONF"; then
    log "WARNING: $CONF has a relative data_dir or media_root: set data_dir = \"/var/lib/streamhub\" and media_root = \"/srv/media\" (as in the new defaults) before you restart streamhub"
fi

install -d -m 0750 "$STATE_DIR"
install -d -m 0755 "$MEDIA_DIR"

mkdir -p "$SHARE_DIR"
printf '%s\n' "${INSTALLED[@]}" > "$MANIFEST"

if [[ $LIVE == 1 ]]; then
    systemd-sysusers "${SYSUSERS_DST}"
    systemd-tmpfiles --create "${TMPFILES_DST}"
    chown streamhub:streamhub "$STATE_DIR"
    systemctl daemon-reload
    log "created the streamhub user and $MEDIA_DIR; reloaded systemd"
    if [[ $ENABLE == 1 ]]; then
        systemctl enable --now streamhub.service
        log "streamhub.service enabled and started (journalctl -u streamhub)"
    elif systemctl is-active --quiet streamhub.service; then
        log "streamhub is running the old binary: systemctl restart streamhub"
    else
        log "start it with: systemctl enable --now streamhub"
    fi
elif [[ $ENABLE == 1 ]]; then
    log "--enable ignored: not a live systemd system (--destdir given or systemd not running)"
fi
log "done"
