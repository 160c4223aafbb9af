// A TCP port on loopback that nobody listens on now (the kernel's pick), for the rendezvous
// store of data-parallel tests. Another process may take it before the test binds it; the
// window is the few milliseconds until the test's store starts. Header-only, so that the
// libtorch-only test binaries can use it too.

#ifndef REEL_TESTS_SUPPORT_FREE_PORT_H_
#define REEL_TESTS_SUPPORT_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace reel::testing {

// 0 when the kernel gives none.
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_FREE_PORT_H_
