#include "cli_cluster.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/envelope.h"

namespace hub::tools {

namespace {

// A plain HTTP/1.0 GET on loopback or the LAN: enough for one small JSON
// document, with a 5 s deadline on every socket call.
bool HttpGet(const std::string& host, const std::string& port, const std::string& path, std::string* body,
             std::string* error) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return false;
  }
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = "no hub answers at " + host + ":" + port + " (is it running? see HTTP_PORT)";
    return false;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\nAccept: application/json\r\n\r\n";
  bool ok = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  std::string resp;
  char buf[16384];
  while (ok) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) ok = false;
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
    if (resp.size() > (64u << 20)) ok = false;
  }
  ::close(fd);
  size_t head_end = resp.find("\r\n\r\n");
  if (!ok || head_end == std::string::npos) {
    *error = "the hub at " + host + ":" + port + " did not answer in time";
    return false;
  }
  if (resp.compare(0, 12, "HTTP/1.1 200") != 0 && resp.compare(0, 12, "HTTP/1.0 200") != 0) {
    *error = "the hub answered " + resp.substr(0, resp.find("\r\n"));
    return false;
  }
  *body = resp.substr(head_end + 4);
  return true;
}

std::string Field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

}  // namespace

int Keygen() {
  std::printf("%s\n", cluster::Keyring::FormatKey(cluster::Keyring::GenerateKey()).c_str());
  return 0;
}

int Keyring(const std::string& file, const std::string& action, const std::string& key_text) {
  if (file.empty()) {
    std::fprintf(stderr, "stream-hub keyring: set P2P_KEYRING_FILE or pass --file\n");
    return 2;
  }
  auto ring = cluster::Keyring::Load(file);
  if (!ring) {
    if (action != "install") {
      std::fprintf(stderr, "stream-hub keyring: %s\n", ring.error().message.c_str());
      return 1;
    }
    ring = cluster::Keyring();
  }
  if (action == "list") {
    for (size_t i = 0; i < ring->keys().size(); ++i) {
      std::printf("%s%s\n", cluster::Keyring::FormatKey(ring->keys()[i]).c_str(), i == 0 ? "  (primary)" : "");
    }
    return 0;
  }
  auto key = cluster::Keyring::ParseKey(key_text);
  if (!key) {
    std::fprintf(stderr, "stream-hub keyring %s: %s\n", action.c_str(), key.error().message.c_str());
    return 2;
  }
  Result<void> r;
  if (action == "install") {
    ring->Install(*key);
  } else if (action == "use") {
    r = ring->Use(*key);
  } else if (action == "remove") {
    r = ring->Remove(*key);
  } else {
    std::fprintf(stderr, "stream-hub keyring: unknown action %s (list, install, use, remove)\n", action.c_str());
    return 2;
  }
  if (!r) {
    std::fprintf(stderr, "stream-hub keyring %s: %s\n", action.c_str(), r.error().message.c_str());
    return 1;
  }
  if (auto w = ring->Save(file); !w) {
    std::fprintf(stderr, "stream-hub keyring: cannot write %s: %s\n", file.c_str(), w.error().message.c_str());
    return 1;
  }
  std::printf("%s: %zu key(s); a running hub re-reads it within a second\n", file.c_str(), ring->keys().size());
  return 0;
}

int Peers(const config::Config& cfg, const std::string& url, bool as_json) {
  std::string host = "127.0.0.1", port = std::to_string(cfg.http_port);
  if (cfg.http_bind != "0.0.0.0" && cfg.http_bind != "::") host = cfg.http_bind;
  if (!url.empty()) {
    std::string u = url;
    if (u.rfind("http://", 0) == 0) u = u.substr(7);
    u = u.substr(0, u.find('/'));
    size_t colon = u.rfind(':');
    host = colon == std::string::npos ? u : u.substr(0, colon);
    port = colon == std::string::npos ? "80" : u.substr(colon + 1);
  }
  std::string body, error;
  if (!HttpGet(host, port, "/api/peers", &body, &error)) {
    std::fprintf(stderr, "stream-hub peers: %s\n", error.c_str());
    return 1;
  }
  if (as_json) {
    std::printf("%s\n", body.c_str());
    return 0;
  }
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j["members"].is_array()) {
    std::fprintf(stderr, "stream-hub peers: the hub's answer is not the expected JSON\n");
    return 1;
  }
  if (!j.value("enabled", false)) {
    std::printf("This hub runs alone (P2P_ENABLED=false).\n");
    return 0;
  }
  std::printf("%-24s %-21s %-8s %-6s %-8s %-5s %-7s %s\n", "NAME", "ADDRESS", "STATE", "INC", "RTT_MS", "VER",
              "SOURCE", "LAST_SEEN");
  for (const auto& m : j["members"]) {
    std::string name = Field(m, "name") + (m.value("self", false) ? " *" : "");
    std::printf("%-24s %-21s %-8s %-6s %-8s %-5s %-7s %s\n", name.c_str(), Field(m, "address").c_str(),
                Field(m, "state").c_str(), Field(m, "incarnation").c_str(), Field(m, "rtt_ms").c_str(),
                Field(m, "version").c_str(), Field(m, "source").c_str(), Field(m, "last_seen").c_str());
  }
  return 0;
}

}  // namespace hub::tools
