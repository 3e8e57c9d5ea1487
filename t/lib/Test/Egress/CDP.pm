package Test::Egress::CDP;

# Drives Debian's headless Chromium over the Chrome DevTools Protocol, using
# the suite's own WebSocket client (no npm, no webdriver).
#
#   my $b = Test::Egress::CDP->new($t);           # starts chromium as 'chromium'
#   $b->goto("http://127.0.0.1:$port/portal/");   # waits for the load event
#   my $v = $b->eval('document.title');           # value of an expression
#   $b->click('#confirm');                        # real mouse click on an element
#   $b->wait_for('document.querySelector(".dot.on") === null', 20);
#   $b->screenshot("$dir/page.png");

use strict;
use warnings;

use Carp qw(croak);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time sleep);

use Test::Egress::WS;

my $CHROMIUM = '/usr/bin/chromium';
my $JSON     = JSON::PP->new->canonical->allow_nonref;

sub available { -x $CHROMIUM }

sub new {
    my ($class, $t, %o) = @_;
    croak "chromium is not installed" unless available();
    my $name    = $o{name} // 'chromium';
    my $profile = $t->dir . "/$name-profile";
    mkdir $profile;
    # Flags keep Chromium from reaching out on its own: tests talk to loopback only.
    $t->spawn($name,
        cmd => [ $CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
            '--disable-features=Translate,MediaRouter,OptimizationHints',
            '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0',
            "--user-data-dir=$profile", '--window-size=' . ($o{size} // '1024,768'),
            'about:blank' ],
        wait_log => qr{DevTools listening on ws://127\.0\.0\.1:\d+/},
        timeout  => 60);
    my ($port) = $t->log_of($name) =~ m{DevTools listening on ws://127\.0\.0\.1:(\d+)/};
    my $self = bless { t => $t, name => $name, port => $port, id => 0, events => [] }, $class;

    my $list = $self->_json_get('/json/list');
    my ($page) = grep { $_->{type} eq 'page' } @$list;
    croak "no page target in /json/list" unless $page;
    my ($path) = $page->{webSocketDebuggerUrl} =~ m{^ws://[^/]+(/.*)$};
    $self->{ws} = Test::Egress::WS->connect(host => '127.0.0.1', port => $port, path => $path)
        or croak "cannot connect to the page target";
    $self->call('Page.enable');
    $self->call('Runtime.enable');
    # Clipboard writes need a focused page; headless has no window focus.
    $self->call('Emulation.setFocusEmulationEnabled', { enabled => JSON::PP::true });
    return $self;
}

sub port { $_[0]{port} }

sub _json_get {
    my ($self, $path) = @_;
    my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$self->{port}$path");
    croak "GET $path: $res->{status}" unless $res->{success};
    return $JSON->decode($res->{content});
}

# Sends a command and returns its result (croaks on a protocol error).
sub call {
    my ($self, $method, $params, $timeout) = @_;
    my $id = ++$self->{id};
    $self->{ws}->send_text($JSON->encode({ id => $id, method => $method, params => $params // {} }));
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        my $m = $self->{ws}->recv(1) or next;
        croak "devtools socket closed" if $m->{type} eq 'close' || $m->{type} eq 'eof';
        my $j = $JSON->decode($m->{data});
        if (!defined $j->{id}) {
            push @{ $self->{events} }, $j;
            next;
        }
        next unless $j->{id} == $id;
        croak "$method: $j->{error}{message}" if $j->{error};
        return $j->{result};
    }
    croak "$method: no answer";
}

# Waits for an event by name (from the queue first); returns its params or undef.
sub wait_event {
    my ($self, $name, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (1) {
        for my $i (0 .. $#{ $self->{events} }) {
            next unless $self->{events}[$i]{method} eq $name;
            return (splice @{ $self->{events} }, $i, 1)[0]{params};
        }
        return undef if time > $deadline;
        my $m = $self->{ws}->recv(1) or next;
        return undef if $m->{type} eq 'close' || $m->{type} eq 'eof';
        my $j = $JSON->decode($m->{data});
        push @{ $self->{events} }, $j if !defined $j->{id};
    }
}

# Navigates and waits for the load event.
sub goto {
    my ($self, $url) = @_;
    $self->{events} = [];
    my $r = $self->call('Page.navigate', { url => $url });
    croak "navigate $url: $r->{errorText}" if $r->{errorText};
    $self->wait_event('Page.loadEventFired', 30) or croak "no load event for $url";
    return $self;
}

# Evaluates an expression in the page (promises awaited, as a user gesture).
sub eval {
    my ($self, $expr) = @_;
    my $r = $self->call('Runtime.evaluate', { expression => $expr,
        returnByValue => JSON::PP::true, awaitPromise => JSON::PP::true,
        userGesture => JSON::PP::true });
    croak "eval '$expr': " . ($r->{exceptionDetails}{exception}{description}
        // $r->{exceptionDetails}{text}) if $r->{exceptionDetails};
    return $r->{result}{value};
}

# Polls an expression until it is true; returns its value, or undef on timeout.
sub wait_for {
    my ($self, $expr, $timeout) = @_;
    my $deadline = time + ($timeout // 20) * ($ENV{EGRESS_SAN} ? 3 : 1);
    while (time < $deadline) {
        my $v = eval { $self->eval($expr) };
        return $v if $v;
        sleep 0.1;
    }
    return undef;
}

# A real mouse click in the middle of the element matched by a CSS selector.
sub click {
    my ($self, $selector) = @_;
    my $box = $self->eval('(function(){var e=document.querySelector(' . $JSON->encode($selector)
        . ');if(!e)return null;e.scrollIntoView({block:"center"});'
        . 'var r=e.getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2];})()')
        or croak "no element $selector";
    for my $type (qw(mousePressed mouseReleased)) {
        $self->call('Input.dispatchMouseEvent', { type => $type, x => $box->[0],
            y => $box->[1], button => 'left', clickCount => 1 });
    }
    return $self;
}

# Key presses: 'Tab', 'Enter', or text typed into the focused element.
sub press {
    my ($self, $key) = @_;
    my %code = (Tab => 9, Enter => 13);
    my %p = (key => $key, code => $key, windowsVirtualKeyCode => $code{$key},
        ($key eq 'Enter' ? (text => "\r") : ()));
    $self->call('Input.dispatchKeyEvent', { type => 'keyDown', %p });
    $self->call('Input.dispatchKeyEvent', { type => 'keyUp', %p });
    return $self;
}

sub type {
    my ($self, $text) = @_;
    $self->call('Input.insertText', { text => $text });
    return $self;
}

# Viewport size (CSS pixels); mobile => 1 emulates a phone.
sub viewport {
    my ($self, $w, $h, %o) = @_;
    $self->call('Emulation.setDeviceMetricsOverride', { width => $w, height => $h,
        deviceScaleFactor => 1, mobile => $o{mobile} ? JSON::PP::true : JSON::PP::false });
    return $self;
}

sub screenshot {
    my ($self, $file) = @_;
    my $r = $self->call('Page.captureScreenshot', { format => 'png', captureBeyondViewport => JSON::PP::true });
    open(my $fh, '>', $file) or croak "$file: $!";
    binmode $fh;
    print {$fh} decode_base64($r->{data});
    close $fh;
    return -s $file;
}

# Browser-wide commands go to the browser target (e.g. Browser.grantPermissions).
# Its socket stays open: Chromium undoes some settings when the client leaves.
sub browser_call {
    my ($self, $method, $params) = @_;
    if (!$self->{bws}) {
        my $v = $self->_json_get('/json/version');
        my ($path) = $v->{webSocketDebuggerUrl} =~ m{^ws://[^/]+(/.*)$};
        $self->{bws} = Test::Egress::WS->connect(host => '127.0.0.1', port => $self->{port},
            path => $path);
    }
    my $id = ++$self->{id};
    $self->{bws}->send_text($JSON->encode({ id => $id, method => $method, params => $params // {} }));
    while (my $m = $self->{bws}->recv(10)) {
        my $j = eval { $JSON->decode($m->{data}) } or next;
        next unless ($j->{id} // 0) == $id;
        croak "$method: $j->{error}{message}" if $j->{error};
        return $j->{result};
    }
    croak "$method: no answer";
}

sub close {
    my ($self) = @_;
    for my $k (qw(ws bws)) {
        $self->{$k}->close if $self->{$k};
        $self->{$k} = undef;
    }
    $self->{t}->stop($self->{name});
}

1;
