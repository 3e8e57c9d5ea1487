#!/usr/bin/perl
# The man pages (docs/man/*.scd, built by make into BUILD/man/) and the
# programs' --help do not drift apart: every command of `egress --help` has a
# section in egress(1) whose options are exactly those of its --help, the
# same for egress-coordinator(8), and egress(5) names exactly the module's
# directives and variables. Each built page renders with `man -l` without a
# warning. `make install` into a DESTDIR puts everything where the packaging
# expects it.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator');
my $root = $t->root;
my $man  = $t->build_dir . '/man';

# --help option lines: an indented -x, --long or --long at the line start.
sub help_options {
    my ($text) = @_;
    my %o;
    $o{$1} = 1 while $text =~ /^[ \t]+(?:-\w, )?(--[a-z][a-z0-9-]*)/mg;
    return [ sort keys %o ];
}

# scdoc option entries: a line starting with *--long* or *-x*, *--long*.
sub page_options {
    my ($text) = @_;
    my %o;
    $o{$1} = 1 while $text =~ /^\*(?:-\w\*, \*)?(--[a-z][a-z0-9-]*)\*/mg;
    return [ sort keys %o ];
}

# One "## egress CMD" section of egress.1.scd, up to the next heading.
sub page_section {
    my ($text, $cmd) = @_;
    return $text =~ /^## egress \Q$cmd\E\n(.*?)(?=^#)/ms ? $1 : undef;
}

my $egress = $t->bin('egress');
my $coord  = $t->bin('egress-coordinator');

# egress(1): the command list, then each command's options.
my $page1 = Test::Egress::slurp("$root/docs/man/egress.1.scd");
my ($rc, $help) = $t->run([ $egress, '--help' ]);
is($rc, 0, 'egress --help exits 0');
my ($cmds) = $help =~ /^Commands:\n(.*?)\n\n/ms;
my @cmds = ($cmds // '') =~ /^  ([a-z]+)\s/mg;
cmp_ok(scalar @cmds, '>=', 5, 'egress --help lists its commands') or diag($help);
my @sections = $page1 =~ /^## egress ([a-z]+)$/mg;
is_deeply([ sort @sections ], [ sort @cmds ], 'egress(1) has one section per command');
for my $cmd (@cmds) {
    my ($crc, $chelp) = $t->run([ $egress, $cmd, '--help' ]);
    is($crc, 0, "egress $cmd --help exits 0");
    my $want = help_options($chelp);
    cmp_ok(scalar @$want, '>=', 2, "egress $cmd --help lists options");
    my $sec = page_section($page1, $cmd);
    is_deeply(page_options($sec // ''), $want, "egress(1) section $cmd lists the same options")
        or diag("help: @$want\npage: @{ page_options($sec // '') }");
}

# egress-coordinator(8).
my $page8 = Test::Egress::slurp("$root/docs/man/egress-coordinator.8.scd");
($rc, $help) = $t->run([ $coord, '--help' ]);
is($rc, 0, 'egress-coordinator --help exits 0');
my $want8 = help_options($help);
cmp_ok(scalar @$want8, '>=', 4, 'egress-coordinator --help lists options');
is_deeply(page_options($page8), $want8, 'egress-coordinator(8) lists the same options')
    or diag("help: @$want8\npage: @{ page_options($page8) }");
my @tokcmds = sort($help =~ /^  token (add|list|revoke)\b/mg);
my @pagetok = sort($page8 =~ /^\*token (add|list|revoke)\b/mg);
is_deeply(\@pagetok, [ sort keys %{ { map { $_ => 1 } @tokcmds } } ],
    'egress-coordinator(8) documents each token command');

# egress(5): the module's directives and variables, from its sources.
my %names;
for my $f (glob "$root/ngx_egress_module/*.c") {
    my $src = Test::Egress::slurp($f);
    $names{$1} = 1 while $src =~ /ngx_string\("(egress_[a-z_]+)"\)/g;
}
my $page5 = Test::Egress::slurp("$root/docs/man/egress.5.scd");
my %doc;
$doc{$1} = 1 while $page5 =~ /^\*(egress_[a-z_]+)\*/mg;    # directives
$doc{$1} = 1 while $page5 =~ /\*\$(egress_[a-z_]+)\*/g;     # variables
cmp_ok(scalar keys %names, '>=', 10, 'the module source names its directives');
is_deeply([ sort keys %doc ], [ sort keys %names ],
    'egress(5) names every directive and variable of the module, and no other');

# Every built page renders, without a groff warning.
for my $p ('egress.1', 'egress.5', 'egress-coordinator.8') {
    ok(-s "$man/$p", "$p is built") or next;
    my ($mrc, $out) = $t->run([ 'man', '--warnings', '-l', "$man/$p" ],
        env => { MANPAGER => 'cat', PAGER => 'cat', MANWIDTH => 80 }, stderr_to => "$man/$p.err");
    is($mrc, 0, "man -l $p exits 0");
    like($out, qr/^NAME\n/m, "man -l $p renders a NAME section");
    is(Test::Egress::slurp("$man/$p.err"), '', "man -l $p warns about nothing");
    unlink "$man/$p.err";
}

# bash completion: commands, and options read from the program's --help.
SKIP: {
    skip 'no bash', 3 unless -x '/bin/bash';
    my $complete = sub {
        my ($cword, @words) = @_;
        my $script = 'source "$1"; shift; COMP_CWORD=$1; shift; COMP_WORDS=("$@"); _egress; '
            . 'printf "%s\\n" "${COMPREPLY[@]}"';
        my ($crc, $cout) = $t->run([ '/bin/bash', '-c', $script, 'x',
            "$root/conf/egress.bash-completion", $cword, $egress, @words ]);
        return join ' ', sort split /\n/, $cout;
    };
    is($complete->(1, 'st'), 'start status stop', 'bash completes commands');
    like($complete->(2, 'start', '--ins'), qr/^--install$/, 'bash completes egress start --install');
    is($complete->(2, 'lease', 're'), 'release', 'bash completes lease subcommands');
}

# make install into a DESTDIR (the packaging's own step), from the built tree.
SKIP: {
    skip 'make install is checked on the plain build', 1 if $t->san;
    my $dest = $t->dir . '/dest';
    my ($irc, $iout) = $t->run([ 'make', '-s', '-C', $root, 'BUILD=' . $t->build_dir,
        "DESTDIR=$dest", 'PREFIX=/usr', 'install' ], timeout => 600);
    is($irc, 0, 'make install DESTDIR=... PREFIX=/usr') or diag($iout);
    for my $f (qw(usr/bin/egress usr/sbin/egress-coordinator
                  usr/lib/nginx/modules/ngx_stream_egress_module.so
                  usr/share/nginx/modules-available/mod-stream-egress.conf
                  usr/share/man/man1/egress.1 usr/share/man/man5/egress.5
                  usr/share/man/man8/egress-coordinator.8 etc/egress/coordinator.conf
                  usr/lib/systemd/system/egress-coordinator.service
                  usr/lib/systemd/user/egress-host@.service
                  usr/lib/sysusers.d/egress-coordinator.conf
                  usr/share/bash-completion/completions/egress)) {
        ok(-f "$dest/$f", "installs /$f");
    }
    ok(-x "$dest/usr/bin/egress" && -x "$dest/usr/sbin/egress-coordinator",
        'the programs are executable');
    like(Test::Egress::slurp("$dest/usr/lib/systemd/system/egress-coordinator.service"),
        qr{^ExecStart=/usr/sbin/egress-coordinator }m, 'the unit runs the installed coordinator');
    Test::Egress::spew("$dest/etc/egress/coordinator.conf", "# edited\n");
    ($irc, $iout) = $t->run([ 'make', '-s', '-C', $root, 'BUILD=' . $t->build_dir,
        "DESTDIR=$dest", 'PREFIX=/usr', 'install' ], timeout => 600);
    is($irc, 0, 'a second make install') or diag($iout);
    is(Test::Egress::slurp("$dest/etc/egress/coordinator.conf"), "# edited\n",
        'it keeps an edited coordinator.conf');

    my $loc = $t->dir . '/local';
    ($irc, $iout) = $t->run([ 'make', '-s', '-C', $root, 'BUILD=' . $t->build_dir,
        "DESTDIR=$loc", 'install' ], timeout => 600);
    is($irc, 0, 'make install with the default PREFIX') or diag($iout);
    like(Test::Egress::slurp("$loc/usr/local/share/nginx/modules-available/mod-stream-egress.conf"),
        qr{^load_module /usr/local/lib/nginx/modules/ngx_stream_egress_module\.so;$}m,
        'its load_module snippet names the module it installed');
    like(Test::Egress::slurp("$loc/usr/local/lib/systemd/system/egress-coordinator.service"),
        qr{EnvironmentFile=/usr/local/etc/egress/coordinator\.conf}, 'and its config file');
}

$t->done;
done_testing;
