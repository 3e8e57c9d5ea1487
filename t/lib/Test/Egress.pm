package Test::Egress;

# Test harness for egress, in the spirit of nginx-tests' Test::Nginx: each
# test gets a private directory, free loopback ports, and real processes
# (nginx with the built module, egress-coordinator, the egress agent, local
# origin servers) whose logs are checked for sanitizer reports and nginx
# alerts when the test ends.
#
#   my $t = Test::Egress->new;
#   my $c = $t->coordinator;                  # real coordinator, SQLite in $t->dir
#   my $token = $c->token(owner => 'alice', org => 'acme');
#   my $lease = $c->lease($token, slug => 'swift-crab');
#   my $o = $t->origin;                       # HTTP origin on 127.0.0.1
#   $t->nginx(stream => "...", wait_port => $port);
#
# Environment: EGRESS_BUILD (directory with the built binaries, default
# build/), EGRESS_SAN=1 (binaries are ASan/UBSan builds), EGRESS_KEEP=1
# (keep the test directory for inspection), EGRESS_TEST_DB=pg (coordinators
# keep their state in a scratch PostgreSQL server, see $t->postgres).

use strict;
use warnings;

use Exporter qw(import);
use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);
use Test::More ();

use Test::Egress::Coordinator;
use Test::Egress::Origin;
use Test::Egress::Postgres;

our @EXPORT_OK = qw(http_get http_request slurp spew wait_until);

# A write to a socket a process under test closed must fail the check that
# made it (EPIPE), not kill the whole test file with SIGPIPE.
$SIG{PIPE} = 'IGNORE';

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');

# Patterns that fail a test when they appear in any process log.
my @BAD_LOG = (
    qr/ERROR: AddressSanitizer/,
    qr/ERROR: LeakSanitizer/,
    qr/runtime error: /,
    qr/^==\d+==ERROR/m,
);
my @BAD_NGINX_LOG = (qr/\[alert\]/, qr/\[emerg\]/, qr/\[crit\]/);

sub new {
    my ($class, %opts) = @_;
    my $dir = tempdir('egress-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{EGRESS_KEEP});
    my $self = bless {
        dir   => $dir,
        procs => {},
        order => [],
        ports => {},
    }, $class;
    Test::More::diag("test dir: $dir") if $ENV{EGRESS_KEEP};
    return $self;
}

sub root { $ROOT }
sub dir  { $_[0]{dir} }
sub san  { $ENV{EGRESS_SAN} ? 1 : 0 }

sub build_dir {
    return $ENV{EGRESS_BUILD} // "$ROOT/build";
}

# Path of a built artifact: egress-coordinator, egress, ngx_stream_egress_module.so.
sub bin {
    my ($self, $name) = @_;
    return $self->build_dir . "/$name";
}

# Skips the whole test file unless every named artifact is built.
sub require_bins {
    my ($self, @names) = @_;
    for my $n (@names) {
        my $p = $self->bin($n);
        Test::More::plan(skip_all => "$n not built ($p)") unless -e $p;
    }
    return $self;
}

# Readiness and shutdown waits are longer under the sanitizers.
sub timeout {
    my ($self, $base) = @_;
    $base //= 10;
    return $self->san ? $base * 3 : $base;
}

# A free TCP port on 127.0.0.1 (and ::1 when bound there), distinct within
# this test. The kernel picks it; binding and closing leaves a tiny window
# for another process, which random ephemeral choice makes negligible.
sub port {
    my ($self) = @_;
    for (1 .. 50) {
        my $s = IO::Socket::IP->new(
            LocalHost => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            ReuseAddr => 0,
            Listen    => 1,
        ) or next;
        my $p = $s->sockport;
        close $s;
        next if $self->{ports}{$p}++;
        return $p;
    }
    croak "no free port";
}

# Environment that makes sanitizer reports land in the process log and fail
# loudly; nginx needs the runtimes preloaded since Debian's binary is not
# instrumented.
sub san_env {
    my ($self, %opts) = @_;
    return () unless $self->san;
    my %env = (
        ASAN_OPTIONS  => 'abort_on_error=1:detect_leaks=' . ($opts{leaks} // 1)
            . ':allocator_may_return_null=1:print_summary=1',
        UBSAN_OPTIONS => 'print_stacktrace=1:halt_on_error=1',
        LSAN_OPTIONS  => 'suppressions=' . "$ROOT/t/lsan.supp",
    );
    if ($opts{preload}) {
        my @libs = map { chomp(my $l = `gcc -print-file-name=$_`); $l } qw(libasan.so libubsan.so);
        $env{LD_PRELOAD} = join(' ', @libs);
    }
    return %env;
}

# Starts a process. Options:
#   cmd       => [argv]         required
#   env       => {NAME => val}  added to the environment
#   stdin     => string         written to the process's stdin (then closed)
#   wait_port => port           ready when 127.0.0.1:port accepts
#   wait_log  => qr//           ready when the log matches
#   wait_file => path           ready when the file exists
#   bad_log   => [qr//]         extra patterns that fail the test
#   allow_exit => 1             exiting early is not an error
#   as_user   => [uid, gid]     run as this user (logs are opened before)
#   stop_signal => 'INT'        what stop() sends by default (TERM)
# stdout and stderr go to $dir/$name.log. Returns the pid.
sub spawn {
    my ($self, $name, %o) = @_;
    croak "process $name already running" if $self->{procs}{$name} && $self->{procs}{$name}{pid};
    my $log = "$self->{dir}/$name.log";
    my ($rd, $wr);
    pipe($rd, $wr) or croak "pipe: $!" if defined $o{stdin};

    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        if (defined $o{stdin}) {
            close $wr;
            open STDIN, '<&', $rd or POSIX::_exit(127);
        } else {
            open STDIN, '<', '/dev/null' or POSIX::_exit(127);
        }
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        my %env = (%{ $o{env} || {} });
        @ENV{ keys %env } = values %env;
        _drop_privileges($o{as_user}) if $o{as_user};
        exec { $o{cmd}[0] } @{ $o{cmd} } or POSIX::_exit(127);
    }
    if (defined $o{stdin}) {
        close $rd;
        print {$wr} $o{stdin};
        close $wr;
    }
    my $p = $self->{procs}{$name} = { %o, pid => $pid, log => $log, name => $name };
    push @{ $self->{order} }, $name unless grep { $_ eq $name } @{ $self->{order} };

    my $deadline = time + $self->timeout($o{timeout} // 10);
    my $ready = sub {
        return port_open($o{wait_port}) if $o{wait_port};
        return slurp($log) =~ $o{wait_log} if $o{wait_log};
        return -e $o{wait_file} if $o{wait_file};
        return 1;
    };
    while (!$ready->()) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $p->{status} = $?;
            $p->{pid}    = undef;
            croak "$name exited (status " . ($? >> 8) . ") before it was ready:\n" . tail($log);
        }
        croak "$name not ready after timeout:\n" . tail($log) if time > $deadline;
        sleep 0.02;
    }
    return $pid;
}

# In a forked child: becomes uid/gid for good (PostgreSQL refuses root).
sub _drop_privileges {
    my ($ug) = @_;
    my ($uid, $gid) = @$ug;
    chdir '/';
    $ENV{HOME} = '/';
    $( = $gid;
    $) = "$gid $gid";
    $< = $> = $uid;
    POSIX::_exit(127) if $> != $uid || $< != $uid;
}

sub pid {
    my ($self, $name) = @_;
    return $self->{procs}{$name} ? $self->{procs}{$name}{pid} : undef;
}

sub running {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name} or return 0;
    return 0 unless $p->{pid};
    if (waitpid($p->{pid}, WNOHANG) == $p->{pid}) {
        $p->{status} = $?;
        $p->{pid}    = undef;
        return 0;
    }
    return 1;
}

# Sends sig (default TERM), waits for exit (KILL after the timeout).
# Returns the wait status ($?), or undef when the process was not running.
sub stop {
    my ($self, $name, $sig) = @_;
    my $p = $self->{procs}{$name} or return undef;
    return $p->{status} unless $p->{pid};
    my $pgid = $p->{pid};
    $sig //= $p->{stop_signal} // 'TERM';
    kill($sig, $p->{pid});
    my $deadline = time + $self->timeout(10);
    while (waitpid($p->{pid}, WNOHANG) != $p->{pid}) {
        if (time > $deadline) {
            Test::More::diag("$name did not exit on $sig; killing");
            kill 'KILL', -$p->{pid};
            kill 'KILL', $p->{pid};
            waitpid($p->{pid}, 0);
            last;
        }
        sleep 0.02;
    }
    $p->{status} = $?;
    $p->{pid}    = undef;
    # The process group may still hold children (nginx workers).
    kill 'KILL', -$pgid;
    return $p->{status};
}

# Waits for a process to exit by itself; returns its wait status or undef on timeout.
sub wait_exit {
    my ($self, $name, $timeout) = @_;
    my $p = $self->{procs}{$name} or return undef;
    return $p->{status} unless $p->{pid};
    my $deadline = time + $self->timeout($timeout // 10);
    while (time < $deadline) {
        if (waitpid($p->{pid}, WNOHANG) == $p->{pid}) {
            $p->{status} = $?;
            $p->{pid}    = undef;
            return $p->{status};
        }
        sleep 0.02;
    }
    return undef;
}

sub kill9 {
    my ($self, $name) = @_;
    return $self->stop($name, 'KILL');
}

sub log_of {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name};
    my $log = $p ? $p->{log} : "$self->{dir}/$name.log";
    return -e $log ? slurp($log) : '';
}

# Runs a command to completion; returns (exit code, combined output).
sub run {
    my ($self, $cmd, %o) = @_;
    my $out = "$self->{dir}/run-$$-" . int(rand(1e9)) . ".out";
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        my %env = (%{ $o{env} || {} });
        @ENV{ keys %env } = values %env;
        if (defined $o{stdin}) {
            my $f = "$out.in";
            spew($f, $o{stdin});
            open STDIN, '<', $f or POSIX::_exit(127);
        } else {
            open STDIN, '<', '/dev/null';
        }
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, ($o{stderr_to} ? '>' : '>&'), ($o{stderr_to} // \*STDOUT) or POSIX::_exit(127);
        _drop_privileges($o{as_user}) if $o{as_user};
        exec { $cmd->[0] } @$cmd or POSIX::_exit(127);
    }
    my $deadline = time + $self->timeout($o{timeout} // 30);
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            return (-1, slurp($out) . "\n[timed out]");
        }
        sleep 0.01;
    }
    my $rc = $? >> 8;
    $rc = 128 + ($? & 127) if $? & 127;
    my $text = slurp($out);
    unlink $out, "$out.in";
    return ($rc, $text);
}

# ---- components ---------------------------------------------------------

sub coordinator {
    my ($self, %o) = @_;
    $self->require_bins('egress-coordinator');
    return Test::Egress::Coordinator->start($self, %o);
}

# The test's PostgreSQL server (Test::Egress::Postgres), started on first use.
sub postgres {
    my ($self) = @_;
    Test::More::plan(skip_all => 'PostgreSQL server binaries not installed')
        unless $self->{pg} || Test::Egress::Postgres::available();
    return $self->{pg} //= Test::Egress::Postgres->start($self);
}

# 'pg' when EGRESS_TEST_DB=pg asks coordinators to use PostgreSQL, else 'sqlite'.
sub test_db {
    return ($ENV{EGRESS_TEST_DB} // '') eq 'pg' ? 'pg' : 'sqlite';
}

sub origin {
    my ($self, %o) = @_;
    return Test::Egress::Origin->start($self, %o);
}

# Writes an nginx.conf that loads the built module and starts nginx in the
# foreground. Options: stream => text of the stream{} block body, main =>
# extra main-context text, workers => n (default 1), wait_port => port,
# name => process name (default 'nginx'), conf_only => 1 (write, don't start).
# Returns the path of the configuration file.
sub nginx_conf {
    my ($self, %o) = @_;
    my $name   = $o{name} // 'nginx';
    my $prefix = "$self->{dir}/$name";
    mkdir $prefix;
    mkdir "$prefix/logs";
    my $module = $o{module} // $self->bin('ngx_stream_egress_module.so');
    my $workers = $o{workers} // 1;
    my $stream  = $o{stream} // '';
    my $main    = $o{main} // '';
    my $conf    = <<"EOF";
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
load_module $module;
worker_processes $workers;
daemon off;
master_process on;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log info;
$main
events {
    worker_connections 4096;
}
stream {
$stream
}
EOF
    spew("$prefix/nginx.conf", $conf);
    return "$prefix/nginx.conf";
}

sub nginx {
    my ($self, %o) = @_;
    $self->require_bins('ngx_stream_egress_module.so');
    my $name = $o{name} // 'nginx';
    my $conf = $self->nginx_conf(%o);
    my $prefix = dirname($conf);
    $self->spawn(
        $name,
        cmd => [ '/usr/sbin/nginx', '-p', "$prefix/", '-c', $conf, '-e', "$prefix/logs/error.log" ],
        env => { $self->san_env(preload => 1, leaks => 0) },
        ($o{wait_port} ? (wait_port => $o{wait_port}) : ()),
        nginx_log => "$prefix/logs/error.log",
        allow_log => $o{allow_log},
    );
    return $conf;
}

# Runs `nginx -t` on a configuration; returns (exit code, output).
sub nginx_test {
    my ($self, %o) = @_;
    my $conf = $self->nginx_conf(%o, name => $o{name} // 'nginx-t');
    my $prefix = dirname($conf);
    return $self->run([ '/usr/sbin/nginx', '-t', '-p', "$prefix/", '-c', $conf, '-e',
            "$prefix/logs/error.log" ],
        env => { $self->san_env(preload => 1, leaks => 0) });
}

sub nginx_error_log {
    my ($self, $name) = @_;
    my $f = "$self->{dir}/" . ($name // 'nginx') . "/logs/error.log";
    return -e $f ? slurp($f) : '';
}

# Sends a signal to the nginx master (HUP reloads) and returns.
sub nginx_signal {
    my ($self, $sig, $name) = @_;
    my $pid = $self->pid($name // 'nginx') or croak "nginx not running";
    kill $sig, $pid;
}

# ---- log checks ---------------------------------------------------------

# Fails the current test for every sanitizer report, and for nginx alerts
# unless the process was started with allow_log => 1.
sub check_logs {
    my ($self) = @_;
    return if $self->{checked}++;
    for my $name (@{ $self->{order} }) {
        my $p = $self->{procs}{$name};
        my @files = ($p->{log});
        push @files, $p->{nginx_log} if $p->{nginx_log};
        for my $f (@files) {
            next unless $f && -e $f;
            my $text = slurp($f);
            my @bad = (@BAD_LOG, @{ $p->{bad_log} || [] });
            push @bad, @BAD_NGINX_LOG if $p->{nginx_log} && $f eq $p->{nginx_log} && !$p->{allow_log};
            for my $re (@bad) {
                if ($text =~ $re) {
                    my ($line) = $text =~ /^(.*$re.*)$/m;
                    Test::More::fail("$name log is clean");
                    Test::More::diag("$f: " . ($line // "matches $re"));
                    Test::More::diag(tail($f, 40));
                    last;
                }
            }
        }
    }
}

sub stop_all {
    my ($self) = @_;
    for my $name (reverse @{ $self->{order} }) {
        $self->stop($name) if $self->{procs}{$name}{pid};
    }
}

# Stops everything and checks the logs; call before done_testing (DESTROY
# does it too, but then a failure cannot be reported as a test).
sub done {
    my ($self) = @_;
    $self->stop_all;
    $self->check_logs;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop_all;
}

# ---- helpers ------------------------------------------------------------

sub port_open {
    my ($port, $host) = @_;
    my $s = IO::Socket::IP->new(
        PeerHost => $host // '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 1,
    );
    return 0 unless $s;
    close $s;
    return 1;
}

sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 10) * ($ENV{EGRESS_SAN} ? 3 : 1);
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.02;
    }
    return 0;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    my $d = <$fh>;
    return $d // '';
}

sub spew {
    my ($f, $data, $mode) = @_;
    open my $fh, '>:raw', $f or croak "$f: $!";
    print {$fh} $data;
    close $fh;
    chmod $mode, $f if defined $mode;
}

sub tail {
    my ($f, $n) = @_;
    my @l = split /\n/, slurp($f);
    $n //= 20;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", map {"  | $_"} @l);
}

# Raw HTTP/1.1 exchange over TCP (for proxies: pass the full request text).
# Returns the whole response text (until close or timeout).
sub http_request {
    my ($port, $request, %o) = @_;
    my $s = IO::Socket::IP->new(
        PeerHost => $o{host} // '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 5,
    ) or return undef;
    $s->autoflush(1);
    print {$s} $request;
    my $buf = '';
    my $deadline = time + ($o{timeout} // 10) * ($ENV{EGRESS_SAN} ? 3 : 1);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        last unless $sel->can_read(0.2) || time < $deadline;
        my $n = sysread($s, my $chunk, 65536);
        last if defined $n && $n == 0;
        next unless defined $n;
        $buf .= $chunk;
        last if $o{until} && $buf =~ $o{until};
    }
    close $s;
    return $buf;
}

sub http_get {
    my ($port, $path, %o) = @_;
    my $host = $o{host_header} // "127.0.0.1:$port";
    return http_request($port, "GET $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n", %o);
}

use IO::Select;

1;
