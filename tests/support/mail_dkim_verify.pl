#!/usr/bin/perl
# Verify the DKIM signatures of the message on stdin with Perl's Mail::DKIM,
# an implementation independent of dkimpy. Key records come from the DNS
# server named by the arguments (ip port) and nowhere else. Prints one line
# per signature: "<result> d=<domain> s=<selector> a=<algorithm> <detail>",
# then "overall <result>". Exit 0 when it ran, 2 on bad usage.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

@ARGV == 2 or die "usage: $0 NAMESERVER_IP PORT < message\n";
my ($ip, $port) = @ARGV;
my $resolver = Net::DNS::Resolver->new(
    nameservers => [$ip], port => $port, recurse => 1,
    udp_timeout => 5, tcp_timeout => 5, retry => 1,
);
Mail::DKIM::DNS::resolver($resolver);

binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $dkim->PRINT($line);
}
$dkim->CLOSE();
foreach my $sig ($dkim->signatures) {
    printf "%s d=%s s=%s a=%s %s\n", $sig->result, $sig->domain, $sig->selector,
        $sig->algorithm, $sig->result_detail;
}
printf "overall %s\n", $dkim->result;
exit 0;
