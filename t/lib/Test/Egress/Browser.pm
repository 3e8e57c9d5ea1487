package Test::Egress::Browser;

# Headless Chromium (Debian's /usr/bin/chromium) for end-to-end tests: load a
# page, optionally through a proxy and inside a network namespace, and return
# the serialized DOM; or save a screenshot.
#
#   my $b = Test::Egress::Browser->new($t, proxy => 'http://127.0.0.1:3128',
#                                      wrap => [$n->wrap('lease')], ca => $ca_pem);
#   my ($rc, $dom) = $b->dom('https://origin.test/ip.html');
#   $b->screenshot('https://origin.test/ip.html', "$dir/page.png");

use strict;
use warnings;

use Carp qw(croak);

my $CHROMIUM = '/usr/bin/chromium';

sub available { -x $CHROMIUM }

sub new {
    my ($class, $t, %o) = @_;
    croak "chromium is not installed" unless available();
    my $self = bless { t => $t, %o, n => 0 }, $class;
    return $self;
}

# Flags that keep Chromium from reaching out on its own (this machine has no
# network beyond the test's) and make runs reproducible.
sub _argv {
    my ($self, @extra) = @_;
    my $profile = $self->{t}->dir . '/chromium-' . $self->{n}++;
    mkdir $profile;
    my @argv = (
        @{ $self->{wrap} || [] },
        $CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
        '--no-first-run', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-dev-shm-usage', "--user-data-dir=$profile",
        '--virtual-time-budget=5000',
    );
    push @argv, "--proxy-server=$self->{proxy}" if $self->{proxy};
    # Chromium bypasses proxies for loopback by default; tests want them proxied.
    push @argv, '--proxy-bypass-list=<-loopback>' if $self->{proxy};
    if ($self->{spki}) {
        push @argv, "--ignore-certificate-errors-spki-list=$self->{spki}";
    }
    return (@argv, @extra);
}

# Returns (exit code, DOM text).
sub dom {
    my ($self, $url) = @_;
    my ($rc, $out) = $self->{t}->run([ $self->_argv('--dump-dom', $url) ],
        timeout => 60, stderr_to => $self->{t}->dir . '/chromium.err');
    return ($rc, $out);
}

sub screenshot {
    my ($self, $url, $file, %o) = @_;
    my $size = $o{size} // '1024,640';
    my ($rc, $out) = $self->{t}->run(
        [ $self->_argv("--screenshot=$file", "--window-size=$size", $url) ],
        timeout => 60, stderr_to => $self->{t}->dir . '/chromium.err');
    return ($rc, $out);
}

1;
