/* As tcp_queued, over the container's own eth0 address instead of
 * loopback (the route is still local; the MTU and MSS are eth0's): 8 MiB
 * queued both ways while neither side reads, every byte arrives after the
 * move. */
#define CONF_ON_ETH0 1
#include "tcp_queued.c"
