//! `rvsadm -h`.

/// The usage text.
pub const USAGE: &str = "\
rvsadm — ipvsadm-compatible client of rvsd (docs/rvsadm.md)

Usage:
  rvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-o] [-b sched-flags]
  rvsadm -D virtual-service
  rvsadm -C
  rvsadm -R                      (rules from stdin; replaces the whole state atomically)
  rvsadm -S [-n]
  rvsadm -a|e virtual-service -r server-address [-g|i|m|b] [-w weight] [-x upper] [-y lower]
  rvsadm -d virtual-service -r server-address
  rvsadm -L|l [virtual-service] [options]
  rvsadm -Z [virtual-service]
  rvsadm --set tcp tcpfin udp
  rvsadm -h | -v
  rvsadm realserver setup|teardown --vip ADDR --method dr|tun
  rvsadm --check-config FILE     (check a keepalived.conf, like keepalived -t)

virtual-service:
  --tcp-service|-t addr:port | --udp-service|-u addr:port | --sctp-service addr:port
  --fwmark-service|-f fwmark [-6]

Options:
  --scheduler     -s sched    rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos (default wlc)
  --persistent    -p [secs]   persistent service (default 300 s)
  --netmask       -M mask     persistence granularity (255.255.255.0 or a prefix length)
  --ops           -o          one-packet scheduling
  --sched-flags   -b flags    on a service: sh-fallback,sh-port,mh-fallback,mh-port
  --real-server   -r addr[:port]
  --gatewaying    -g          direct routing (default)
  --ipip          -i          tunnelling (IPIP; --tun-type ipip is accepted, gue/gre are not)
  --masquerading  -m          NAT
  --fullnat       -b          FULLNAT (on a real server)
  --weight        -w weight   0..65535 (default 1)
  --u-threshold   -x n        upper connection threshold
  --l-threshold   -y n        lower connection threshold
  --numeric       -n          numeric output (always the case)
  --connection    -c          list connections
  --stats | --rate | --thresholds | --persistent-conn | --timeout | --sort | --nosort
  --exact         -X          exact numbers (no K/M/G abbreviation)
  --json                      machine-readable listing
  --socket PATH               rvsd's control socket (default: $RVS_SOCKET, /run/rvs/rvsd.sock
                              as root, else $XDG_RUNTIME_DIR/rvs/rvsd.sock or /tmp/rvs-$UID/)
";
