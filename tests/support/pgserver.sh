#!/usr/bin/env bash
# pgserver.sh: a private PostgreSQL server for the tests (DESIGN §10).
#
#   pgserver.sh start DIR              initdb if needed, start, print the URI
#   pgserver.sh stop DIR [fast|immediate]
#   pgserver.sh restart DIR [fast|immediate]
#   pgserver.sh uri DIR                print the URI
#   pgserver.sh destroy DIR            stop (immediate) and rm -rf DIR
#
# DIR is an absolute path. The cluster lives in DIR/data, its log in
# DIR/postgres.log, its Unix socket in DIR itself (no TCP:
# listen_addresses=''), so parallel builds never collide even on one port
# number. The superuser is "datasync", authentication is trust, and the
# database "datasync" exists once start returns. The URI printed is
#   postgresql:///datasync?host=DIR&port=5432&user=datasync
#
# PostgreSQL refuses to run as root: as root, every server command runs as
# the user "nobody" (PGSERVER_USER overrides it), which then owns DIR.
#
# Environment:
#   PGSERVER_FSYNC=off  fsync, full_page_writes and synchronous_commit off:
#                       for tests where a crash of the machine does not
#                       matter (default on: a kill -9 test must mean it)
#   PGBIN               where initdb and pg_ctl are (default: the newest
#                       /usr/lib/postgresql/*/bin, else PATH)
set -euo pipefail

readonly PGSERVER_PORT=5432
readonly PGSERVER_SUPERUSER=datasync
readonly PGSERVER_DB=datasync
# sun_path is 108 bytes on Linux; PostgreSQL appends "/.s.PGSQL.5432".
readonly PGSERVER_MAX_DIR=93
readonly PGSERVER_START_TIMEOUT=60

die() {
	echo "pgserver.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: pgserver.sh start|stop|restart|uri|destroy DIR [fast|immediate]" >&2
	exit 2
}

(($# >= 2)) || usage
cmd=$1
dir=$2
mode=${3:-}

[[ $dir == /* ]] || die "DIR must be an absolute path, got '$dir'"
dir=${dir%/}
((${#dir} <= PGSERVER_MAX_DIR)) ||
	die "DIR is ${#dir} bytes; its socket path must stay under 108 bytes" \
		"(DIR at most $PGSERVER_MAX_DIR): use a shorter one ($dir)"
case $mode in
'' | fast | immediate) ;;
*) die "shutdown mode must be fast or immediate, got '$mode'" ;;
esac

data=$dir/data
log=$dir/postgres.log

find_pgbin() {
	local d
	if [[ -n ${PGBIN:-} ]]; then
		[[ -x $PGBIN/pg_ctl ]] || die "PGBIN=$PGBIN has no pg_ctl"
		echo "$PGBIN"
		return
	fi
	# Debian keeps the server binaries off PATH, one dir per major.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/pg_ctl && -x $d/initdb ]]; then
			echo "$d"
			return
		fi
	done
	if command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return
	fi
	die "no PostgreSQL server binaries (initdb, pg_ctl): run scripts/deps" \
		"(Debian: apt-get install postgresql libpq-dev)"
}
pgbin=$(find_pgbin)

# as_owner runs a command as the server's user: ourselves, or nobody
# when we are root. cd first: postgres resolves paths relative to a cwd
# that must be readable by that user. fd 9 is our lock: the postmaster
# must not inherit it, or it would hold the lock for its whole life.
as_owner() {
	if (($(id -u) == 0)); then
		(cd / && runuser -u "${PGSERVER_USER:-nobody}" -- "$@" 9>&-)
	else
		(cd / && "$@" 9>&-)
	fi
}

uri() {
	echo "postgresql:///$PGSERVER_DB?host=$dir&port=$PGSERVER_PORT&user=$PGSERVER_SUPERUSER"
}

running() {
	[[ -f $data/PG_VERSION ]] && as_owner "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

show_log() {
	if [[ -f $log ]]; then
		echo "pgserver.sh: the end of $log:" >&2
		tail -20 "$log" >&2
	fi
}

init_cluster() {
	local user=${PGSERVER_USER:-nobody} fsync=on
	case ${PGSERVER_FSYNC:-on} in
	on | 1 | true) fsync=on ;;
	off | 0 | false) fsync=off ;;
	*) die "PGSERVER_FSYNC must be on or off, got '$PGSERVER_FSYNC'" ;;
	esac
	mkdir -p "$dir"
	if (($(id -u) == 0)); then
		id "$user" >/dev/null 2>&1 ||
			die "running as root, but there is no user '$user' to run PostgreSQL as" \
				"(set PGSERVER_USER to an unprivileged user)"
		chown "$user" "$dir"
		# The user must reach DIR through every parent directory.
		runuser -u "$user" -- test -w "$dir" ||
			die "user '$user' cannot write $dir: a parent directory" \
				"is not searchable by it (chmod o+x), or use another DIR"
	fi
	# A half-made cluster from an interrupted initdb would fail forever.
	rm -rf "$data"
	if ! as_owner "$pgbin/initdb" -D "$data" -U "$PGSERVER_SUPERUSER" \
		-A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		die "initdb failed in $data (output above)"
	fi
	# Appended settings win over initdb's defaults above them.
	{
		echo "# pgserver.sh"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "port = $PGSERVER_PORT"
		echo "max_connections = 200"
		echo "fsync = $fsync"
		echo "full_page_writes = $fsync"
		echo "synchronous_commit = $fsync"
		echo "log_min_messages = warning"
	} | as_owner tee -a "$data/postgresql.conf" >/dev/null
}

start() {
	if ! running; then
		[[ -f $data/PG_VERSION ]] || init_cluster
		if ! as_owner "$pgbin/pg_ctl" -D "$data" -l "$log" -w \
			-t "$PGSERVER_START_TIMEOUT" start >/dev/null; then
			show_log
			die "the server in $data did not start"
		fi
	fi
	# template1 exists from initdb on; CREATE DATABASE is idempotent here
	# because it runs only when the database is missing.
	local exists
	exists=$("$pgbin/psql" -X -q -A -t -h "$dir" -p "$PGSERVER_PORT" \
		-U "$PGSERVER_SUPERUSER" -d template1 -v ON_ERROR_STOP=1 \
		-c "SELECT 1 FROM pg_database WHERE datname = '$PGSERVER_DB'") ||
		die "cannot connect to the server in $dir (psql failed)"
	if [[ $exists != 1 ]]; then
		"$pgbin/psql" -X -q -h "$dir" -p "$PGSERVER_PORT" \
			-U "$PGSERVER_SUPERUSER" -d template1 -v ON_ERROR_STOP=1 \
			-c "CREATE DATABASE $PGSERVER_DB" >/dev/null ||
			die "cannot create database $PGSERVER_DB in $dir"
	fi
	uri
}

stop() {
	if running; then
		as_owner "$pgbin/pg_ctl" -D "$data" -m "${1:-fast}" -w \
			-t "$PGSERVER_START_TIMEOUT" stop >/dev/null ||
			die "the server in $data did not stop"
	fi
}

# Start, stop and destroy of one DIR must not interleave (two ctest runs
# in one build dir): hold a lock next to DIR for the whole command.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

case $cmd in
start) start ;;
stop) stop "$mode" ;;
restart)
	running || die "no server runs in $data"
	if ! as_owner "$pgbin/pg_ctl" -D "$data" -l "$log" -m "${mode:-fast}" \
		-w -t "$PGSERVER_START_TIMEOUT" restart >/dev/null; then
		show_log
		die "the server in $data did not restart"
	fi
	;;
uri) uri ;;
destroy)
	stop immediate
	rm -rf "$dir"
	rm -f "$dir.lock"
	;;
*) usage ;;
esac
