// serve: a local web page over the results database (sweeps, report tables, curves, runs),
// updating itself while runs are in progress. The server only reads: every request opens the
// database read-only and answers from one read transaction (analysis/serve_api.h), so a sweep
// writing at the same time is never blocked and the page never sees half of a step.
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "analysis/serve_api.h"
#include "analysis/serve_assets.h"
#include "experiments/config_reader.h"
#include "results/store.h"
#include "sweeps/commands.h"

namespace mixlab {

namespace {

struct ServeArgs {
  std::string db = "results/results.db";
  std::string host = "127.0.0.1";
  int port = 8765;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The host part of a Host header: "127.0.0.1:8765" -> "127.0.0.1", "[::1]:80" -> "::1".
std::string host_of(const std::string& header) {
  if (!header.empty() && header[0] == '[') return header.substr(1, header.find(']') - 1);
  return header.substr(0, header.find(':'));
}

std::string dump(const Json& body) {
  // Text from the database or the URL may be invalid UTF-8: replaced, never a throw.
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(dump(body), "application/json; charset=utf-8");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, Json{{"error", message}});
}

// One API request: a fresh read-only connection and one read transaction around every read.
void answer(const std::string& db, const httplib::Request& req, httplib::Response& res) {
  QueryParams params(req.params.begin(), req.params.end());
  try {
    Store store(db, OpenMode::read_only);
    if (sqlite3_exec(store.handle(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw StoreError(db + ": cannot begin a read: " + sqlite3_errmsg(store.handle()));
    ApiResponse r;
    try {
      r = answer_api(store, req.path, params, unix_now());
    } catch (...) {
      sqlite3_exec(store.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    sqlite3_exec(store.handle(), "COMMIT", nullptr, nullptr, nullptr);
    send_json(res, r.status, r.body);
  } catch (const StoreError& e) {
    // The database cannot be read now (removed, replaced by something else, corrupt).
    send_error(res, 503, e.what());
  } catch (const ConfigError& e) {
    send_error(res, 400, e.what());
  }
}

// Ctrl-C and SIGTERM stop the server. Stopping it is not safe inside a signal handler (and
// LibTorch's threads exist before any mask could be set), so the handler only writes a byte
// to a pipe, and a thread waiting on the pipe stops the server.
int stop_pipe[2] = {-1, -1};

void on_stop_signal(int) {
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_pipe[1], &byte, 1);
}

void stop_on_signals(httplib::Server& server) {
  if (::pipe(stop_pipe) != 0) throw std::runtime_error("serve: cannot make a pipe");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  std::thread([&server] {
    char byte;
    while (::read(stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    // A signal that came before the server started listening still stops it once it does.
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    server.stop();
  }).detach();
}

int serve(const ServeArgs& args) {
  // Refuses a missing file or one that is not a mixlab database before listening (exit 2).
  { Store check(args.db, OpenMode::read_only); }

  httplib::Server server;
  // httplib's default is SO_REUSEPORT, with which a second server on the same port starts
  // without a word and takes half of the requests. SO_REUSEADDR alone allows a restart while
  // old connections linger, and refuses a port that is in use.
  server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  std::mutex log_mutex;
  const bool loopback = is_loopback(args.host);
  server.set_default_headers(
      {{"X-Content-Type-Options", "nosniff"},
       {"Content-Security-Policy",
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:"}});
  server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      send_error(res, 405, "sweep serve only reads: " + req.method + " is not allowed");
      res.set_header("Allow", "GET, HEAD");
      return httplib::Server::HandlerResponse::Handled;
    }
    // Served on loopback, a page from another site that renamed itself to 127.0.0.1 (DNS
    // rebinding) must not read the results: its requests carry its own host name.
    if (loopback && !is_loopback(host_of(req.get_header_value("Host")))) {
      send_error(res, 403, "sweep serve on " + args.host + " answers only to localhost names");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto page = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(kServePageHtml, "text/html; charset=utf-8");
  };
  server.Get("/", page);
  server.Get("/sweep", page);
  server.Get("/run", page);
  server.Get("/chart.js", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kChartJs, "application/javascript; charset=utf-8");
  });
  server.Get("/api/.*", [&args](const httplib::Request& req, httplib::Response& res) {
    answer(args.db, req, res);
  });
  // Anything else, and what httplib refuses itself (a malformed request, a URI too long),
  // is answered in JSON with a message.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, 404, "no such page: " + req.path.substr(0, 200));
    else
      send_error(res, res.status, fmt::format("request refused (HTTP {})", res.status));
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr e) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          what = x.what();
        } catch (...) {
        }
        send_error(res, 500, what);
      });
  server.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    std::lock_guard<std::mutex> lock(log_mutex);
    std::cout << fmt::format("{} {} {}", req.method, req.target.substr(0, 300), res.status)
              << std::endl;
  });

  int port = args.port;
  if (port == 0) {
    port = server.bind_to_any_port(args.host);
    if (port < 0) port = 0;
  } else if (!server.bind_to_port(args.host, port)) {
    port = 0;
  }
  if (port == 0)
    throw ConfigError("--host/--port", fmt::format("{}:{}", args.host, args.port),
                      "cannot listen there (address in use, or not this machine's)");
  const std::string shown =
      args.host.find(':') != std::string::npos ? "[" + args.host + "]" : args.host;
  std::cout << fmt::format("serving {} read-only at http://{}:{}/ (Ctrl-C stops)", args.db, shown,
                           port)
            << std::endl;
  stop_on_signals(server);
  server.listen_after_bind();
  return 0;
}

}  // namespace

std::vector<Command> add_serve_commands(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* serve_app = app.add_subcommand(
      "serve",
      "a web page over the database: sweeps, report tables, curves, runs; updates while runs "
      "are in progress; only reads");
  serve_app->add_option("--db", args->db, "results database (opened read-only)")
      ->capture_default_str();
  serve_app
      ->add_option("--host", args->host,
                   "address to listen on; anything but 127.0.0.1 lets other machines read the "
                   "results")
      ->capture_default_str();
  serve_app->add_option("--port", args->port, "TCP port; 0 picks a free one (printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  return {{serve_app, [args] { return serve(*args); }}};
}

}  // namespace mixlab
