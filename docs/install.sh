#!/bin/sh
# Installs or uninstalls xun: the binary, its man page and its systemd unit.
# Called by the Makefile from the top of the source tree:
#
#   sh docs/install.sh install   PREFIX [DESTDIR]
#   sh docs/install.sh uninstall PREFIX [DESTDIR]
#
# install puts
#   ./xun            in $DESTDIR$PREFIX/bin/xun                      (mode 755)
#   docs/xun.1       in $DESTDIR$PREFIX/share/man/man1/xun.1.gz      (gzip -9n)
#   docs/xun.service in $DESTDIR/etc/systemd/system/xun.service      (PREFIX /usr, /usr/local)
#                    or $DESTDIR$PREFIX/lib/systemd/system/xun.service (any other PREFIX)
#                    with @BINDIR@ replaced by $PREFIX/bin
# and, as root with an empty DESTDIR, creates the system user "xun" if it is
# missing and reloads systemd if systemd is running. It never enables or starts
# the service. uninstall removes exactly those files, and the folders that
# held them when they are left empty under a staging DESTDIR or a private
# PREFIX; never the data in /var/lib/xun, nor the user. Both are idempotent
# and say what they do.
set -eu

usage() {
    echo "usage: sh docs/install.sh install|uninstall PREFIX [DESTDIR]" >&2
    exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
action=$1
prefix=$2
destdir=${3-}
case $action in install | uninstall) ;; *) usage ;; esac
case $prefix in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, got \"$prefix\"" >&2; exit 2 ;;
esac
# No trailing slashes ("/usr/" is "/usr").
while :; do case $prefix in */) prefix=${prefix%/} ;; *) break ;; esac; done
while :; do case $destdir in */) destdir=${destdir%/} ;; *) break ;; esac; done
case $destdir in "" | /*) ;; *) destdir=$(pwd)/$destdir ;; esac
[ -n "$prefix" ] || { echo "install.sh: PREFIX=/ is not supported; use /usr" >&2; exit 2; }

top=$(cd "$(dirname "$0")/.." && pwd)   # the source tree
bindir=$prefix/bin
mandir=$prefix/share/man/man1
case $prefix in
/usr | /usr/local) unitdir=/etc/systemd/system; system_prefix=1 ;;
*) unitdir=$prefix/lib/systemd/system; system_prefix=0 ;;
esac

bin_dst=$destdir$bindir/xun
man_dst=$destdir$mandir/xun.1.gz
unit_dst=$destdir$unitdir/xun.service

# Live install: as root, straight onto this system (no staging DESTDIR).
live=0
[ -z "$destdir" ] && [ "$(id -u)" = 0 ] && live=1
systemd_running=0
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && systemd_running=1

say() { printf '%s\n' "$*"; }

# Makes a folder (and its parents) if absent, saying so.
make_dir() {
    [ -d "$1" ] && return 0
    say "mkdir -p $1"
    mkdir -p "$1"
}

# Puts file $1 at $2 with mode $3, unless an identical file is there already.
put() {
    make_dir "$(dirname "$2")"
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
        say "up to date: $2"
    else
        say "install $4 -> $2 (mode $3)"
        install -m "$3" "$1" "$2"
    fi
}

# Removes file $1 if it is there.
remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        say "rm -f $1"
        rm -f "$1"
    else
        say "not installed: $1"
    fi
}

# Removes the folders of $1 that are now empty, from the innermost up to
# (and not including) $2. Folders outside a staging DESTDIR or a private
# PREFIX belong to the system's layout (/usr/local/bin, /etc/systemd/system)
# and are left alone.
prune() {
    dir=$(dirname "$1")
    while [ "$dir" != "$2" ] && [ "$dir" != / ] && [ "$dir" != . ]; do
        case $dir in "${2%/}"/*) ;; *) return 0 ;; esac
        [ -d "$dir" ] || { dir=$(dirname "$dir"); continue; }
        rmdir "$dir" 2>/dev/null || return 0
        say "rmdir $dir"
        dir=$(dirname "$dir")
    done
}

# The folder under which uninstall may remove empty folders ("" for none):
# the parent of a staging DESTDIR or of a private PREFIX, so that these go
# too when nothing else is in them, unless they are common folders.
prune_root() {
    if [ -n "$destdir" ]; then
        base=$destdir
    elif [ "$system_prefix" = 0 ]; then
        base=$prefix
    else
        return 0
    fi
    case $base in
    /opt | /srv | /home | /home/* | /tmp | /var | /var/tmp | /etc | /usr | /usr/local | /root | /mnt | /media)
        case $base in /home/*/*) dirname "$base" ;; *) printf '%s' "$base" ;; esac ;;
    *) dirname "$base" ;;
    esac
}

do_install() {
    [ -x "$top/xun" ] || { echo "install.sh: $top/xun is missing; run 'make xun' first" >&2; exit 1; }
    for f in docs/xun.1 docs/xun.service; do
        [ -f "$top/$f" ] || { echo "install.sh: $top/$f is missing" >&2; exit 1; }
    done
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/xun-install.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 1' HUP INT PIPE TERM

    put "$top/xun" "$bin_dst" 755 ./xun

    gzip -9n <"$top/docs/xun.1" >"$tmp/xun.1.gz"
    put "$tmp/xun.1.gz" "$man_dst" 644 "docs/xun.1 (gzip -9n)"

    # @BINDIR@ -> $bindir, with the characters sed treats specially escaped
    esc=$(printf '%s\n' "$bindir" | sed 's/[\\|&]/\\&/g')
    sed "s|@BINDIR@|$esc|g" "$top/docs/xun.service" >"$tmp/xun.service"
    put "$tmp/xun.service" "$unit_dst" 644 "docs/xun.service (@BINDIR@=$bindir)"

    if [ "$live" = 1 ]; then
        if getent passwd xun >/dev/null 2>&1; then
            say "user xun exists"
        elif command -v useradd >/dev/null 2>&1; then
            nologin=/usr/sbin/nologin
            [ -x "$nologin" ] || nologin=/sbin/nologin
            [ -x "$nologin" ] || nologin=/bin/false
            if getent group xun >/dev/null 2>&1; then group="--gid xun"; else group="--user-group"; fi
            say "useradd --system $group --no-create-home --home-dir /var/lib/xun --shell $nologin xun"
            # shellcheck disable=SC2086 # $group is two words or one
            useradd --system $group --no-create-home --home-dir /var/lib/xun --shell "$nologin" xun
        else
            say "warning: no useradd here; create a system user and group 'xun' yourself" >&2
        fi
        if [ "$systemd_running" = 1 ]; then
            say "systemctl daemon-reload"
            systemctl daemon-reload
        else
            say "systemd is not running here: no daemon-reload"
        fi
    fi

    say ""
    say "xun installed in $bindir (man xun)."
    if [ "$system_prefix" = 0 ]; then
        say "$unitdir is not in systemd's search path: first  systemctl link $unitdir/xun.service"
    fi
    if [ -z "$destdir" ]; then
        [ "$live" = 1 ] || say "Not root: no user 'xun' was created and systemd was not reloaded."
        say "Settings (XUN_API_KEY, XUN_OPTS=--listen ...) go in /etc/default/xun; see $unitdir/xun.service."
        say "To run it:  systemctl enable --now xun    (serves /var/lib/xun on 127.0.0.1:8080)"
    fi
}

do_uninstall() {
    if [ "$live" = 1 ] && [ "$systemd_running" = 1 ] && [ -e "$unit_dst" ]; then
        if systemctl is-active --quiet xun.service || systemctl is-enabled --quiet xun.service 2>/dev/null; then
            say "systemctl disable --now xun.service"
            systemctl disable --now xun.service || true
        fi
    fi
    remove "$bin_dst"
    remove "$man_dst"
    remove "$unit_dst"
    root=$(prune_root)
    if [ -n "$root" ]; then
        prune "$bin_dst" "$root"
        prune "$man_dst" "$root"
        prune "$unit_dst" "$root"
    fi
    if [ "$live" = 1 ] && [ "$systemd_running" = 1 ]; then
        say "systemctl daemon-reload"
        systemctl daemon-reload
    fi
    if [ -z "$destdir" ]; then
        say ""
        say "Kept the index and the user. To remove them too (as root):"
        say "  rm -rf /var/lib/xun && userdel xun"
        [ -e /etc/default/xun ] && say "  rm /etc/default/xun    (your settings)"
    fi
    return 0
}

"do_$action"
