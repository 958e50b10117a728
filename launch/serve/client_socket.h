// Noticing that the client of a non-streaming request went away. cpp-httplib 0.11 gives the
// handler no access to its socket, so the socket is found once by its addresses among this
// process's descriptors, then polled (no bytes read) while the request runs.
#pragma once
#include <string>

namespace dpep {

// The descriptor of this process's TCP socket from local_port to remote_addr:remote_port, or -1.
int find_tcp_socket(const std::string& remote_addr, int remote_port, int local_port);

// True if the peer closed or reset the connection (FIN, RST); false while it is open, also when
// it has sent more bytes (a pipelined request), which stay unread.
bool peer_closed(int fd);

}  // namespace dpep
