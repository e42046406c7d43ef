// `sweep serve` on the real binary: its JSON endpoints give the command line's numbers (report
// CSV and Markdown, plot data, status), hostile requests get 4xx and change nothing, a sweep
// writing at the same time is neither blocked nor seen half-written, and the page renders its
// tables and charts in a real headless browser (Chromium) and updates itself while a run logs.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "experiments/config_reader.h"
#include "results/store.h"
#include "sweep_fixture.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;

namespace {

const std::string kSweep = MIXLAB_SWEEP_BIN;

// The robustness tests' two-run sweep (dense, mot; 12 steps, evaluated every 4) with two seeds,
// so the tables have a spread to show.
std::string tiny_spec(const std::string& corpus) {
  std::string spec = testing::sweep_fixture::two_run_spec("tiny", corpus);
  const std::string one_seed = "\"seeds\": [0]";
  REQUIRE(spec.find(one_seed) != std::string::npos);
  return spec.replace(spec.find(one_seed), one_seed.size(), "\"seeds\": [0, 1]");
}

// A database holding the finished tiny sweep (4 runs) and a sweep "live" of two runs of the same
// configs with another seed and 40 steps: one running (holding `worker`) with eval/loss and
// train/loss at steps 0 and 10, one pending. Made once and copied by each test that needs it.
struct ServeFixture : testing::SpecFixture {
  std::string worker = "test-writer";
  int64_t live_run = 0;
  ServeFixture() : SpecFixture("tiny.json", tiny_spec) {
    static std::string made;  // the first fixture trains; later ones copy its database
    static testing::TempDir cache;
    std::filesystem::create_directories(std::filesystem::path(db).parent_path());
    if (made.empty()) {
      auto r =
          run_command(kSweep + " run " + spec + " --db " + (cache / "made.db") + " --threads 1");
      INFO(r.output);
      REQUIRE(r.status == 0);
      made = cache / "made.db";
    }
    std::filesystem::copy_file(made, db);
    Store store(db);
    std::vector<PlannedRun> planned;
    for (const RunRow& run : store.sweep_runs("tiny")) {
      if (run.seed != 0) continue;
      Json config = Json::parse(run.config_json);
      config["seed"] = 7;
      config["train"]["steps"] = 40;
      planned.push_back(
          {run.variant + " seed=7", run.variant, canonical_dump(config), content_hash(config), 7});
    }
    REQUIRE(planned.size() == 2);
    const int64_t id = store.register_sweep("live", R"({"name":"live"})", "live-hash", planned);
    auto claimed = store.claim_next(id, worker, 1e9, 3);
    REQUIRE(claimed);
    live_run = claimed->run_id;
    log(store, 0, 3.0);
    log(store, 10, 2.5);
  }
  // One logging step of the live run: eval/loss and train/loss.
  void log(Store& store, int64_t step, double loss) const {
    store.log_step(live_run, worker, step, {{"eval/loss", loss}, {"train/loss", loss + 0.1}},
                   0.5 * double(step), 0.01 * double(step));
  }
};

// `sweep serve --port 0` as a child process; its output (the URL, then one line per request)
// is collected as it comes. SIGTERM on destruction.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& db, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {kSweep, "serve", "--db", db, "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd_, buf, sizeof buf)) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        output_.append(buf, size_t(n));
        changed_.notify_all();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      changed_.notify_all();
    });
    std::smatch m;
    const std::regex url(R"(http://127\.0\.0\.1:(\d+)/)");
    std::string printed;
    if (!wait_for([&](const std::string& out) { return std::regex_search(printed = out, m, url); },
                  30)) {
      stop();  // a constructor that throws gets no destructor: stop the child and the reader
      FAIL("sweep serve printed no URL: " << output_);
    }
    port_ = std::stoi(m[1]);
  }
  ~ServeProcess() { stop(); }
  // Sends SIGTERM and returns the exit status.
  int stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      reader_.join();
      ::close(fd_);
    }
    return status_;
  }
  // Waits up to `seconds` for the output to satisfy `done`.
  bool wait_for(const std::function<bool(const std::string&)>& done, double seconds) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::duration<double>(seconds), [&] {
      return done(output_) || closed_;
    }) && done(output_);
  }
  std::string output() {
    std::lock_guard<std::mutex> lock(mutex_);
    return output_;
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_url_encode(false);  // the tests encode, or mean not to
    c.set_read_timeout(30, 0);
    return c;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1, port_ = 0, status_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string output_;
  bool closed_ = false;
};

std::string encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += char(c);
    else
      out += fmt::format("%{:02X}", c);
  return out;
}

struct Answer {
  int status = 0;
  Json body;
  std::string text;
};

Answer get(const ServeProcess& server, const std::string& path,
           const httplib::Headers& headers = {}) {
  auto client = server.client();
  auto res = client.Get(path.c_str(), headers);
  REQUIRE_MESSAGE(res, "no answer to GET " << path);
  Answer a{res->status, Json::parse(res->body, nullptr, false), res->body};
  return a;
}

Json get_ok(const ServeProcess& server, const std::string& path) {
  Answer a = get(server, path);
  INFO(path << " -> " << a.text.substr(0, 300));
  REQUIRE(a.status == 200);
  REQUIRE(a.body.is_object());
  return a.body;
}

// Splits the CLI's CSV output (tables separated by one blank line, no quoted newlines here)
// into its tables.
std::vector<std::string> csv_blocks(const std::string& text) {
  std::vector<std::string> blocks;
  std::string block;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      if (!block.empty()) blocks.push_back(block);
      block.clear();
    } else {
      block += line + "\n";
    }
  }
  if (!block.empty()) blocks.push_back(block);
  return blocks;
}

// A number cell with a spread over seeds (the API writes "std": null for a single value).
bool has_std(const Json& cell) {
  return cell.contains("std") && cell.at("std").is_number();
}

// One CSV line's fields (RFC 4180 quotes; no quoted newlines in these tables).
std::vector<std::string> csv_split(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"')
      fields.back() += '"', ++i;
    else if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted)
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

// Checks the CSV that `sweep report --format csv` printed for a table against the API's JSON
// of it: a column with any spread is "NAME" and "NAME std"; numbers equal to the printed
// precision; "-" and empty cells are empty fields; text as it is.
void check_csv_matches(const std::string& csv, const Json& table) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) lines.push_back(csv_split(line));
  const size_t columns = table["columns"].size();
  std::vector<bool> split(columns, false);
  for (const auto& row : table["rows"])
    for (size_t i = 0; i < columns; ++i) split[i] = split[i] || has_std(row[i]);
  std::vector<std::string> header;
  for (size_t i = 0; i < columns; ++i) {
    header.push_back(table["columns"][i]);
    if (split[i]) header.push_back(table["columns"][i].get<std::string>() + " std");
  }
  REQUIRE(lines.size() == 1 + table["rows"].size());
  CHECK(lines[0] == header);
  auto number = [](const std::string& field, const Json& value) {
    INFO("CLI " << field << " API " << value.dump());
    REQUIRE(value.is_number());
    CHECK(std::stod(field) == doctest::Approx(value.get<double>()).epsilon(1e-9));
  };
  for (size_t r = 0; r < table["rows"].size(); ++r) {
    const Json& row = table["rows"][r];
    const auto& fields = lines[r + 1];
    REQUIRE(fields.size() == header.size());
    size_t f = 0;
    for (size_t i = 0; i < columns; ++i) {
      const Json& cell = row[i];
      if (cell["kind"] == "number") {
        // A bound is signed in every format: "<1.16" in the CSV, "bound": "<" in the JSON.
        const std::string sign = cell["bound"].is_string() ? cell["bound"].get<std::string>() : "";
        CHECK(fields[f].substr(0, sign.size()) == sign);
        number(fields[f].substr(sign.size()), cell["mean"]);
      } else
        CHECK(fields[f] == (cell["kind"] == "text" && cell["text"] != "-"
                                ? cell["text"].get<std::string>()
                                : std::string()));
      ++f;
      if (!split[i]) continue;
      if (has_std(cell))
        number(fields[f], cell["std"]);
      else
        CHECK(fields[f].empty());
      ++f;
    }
  }
}

// Text as a serialised DOM writes it: &, < and > escaped.
std::string html_text(const std::string& text) {
  std::string out;
  for (char c : text)
    out += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
  return out;
}

std::string file_bytes(const std::string& path) {
  return testing::read_text(path);
}

}  // namespace

TEST_CASE("sweep serve: the API gives the report, status, curves and runs of the command line") {
  ServeFixture f;
  ServeProcess server(f.db);

  SUBCASE("report tables: the same CSV and the same Markdown cells as sweep report") {
    for (const std::string table : {"all", "summary", "costs", "speedup"}) {
      CAPTURE(table);
      const Json api = get_ok(server, "/api/report?sweep=tiny&table=" + table);
      auto cli =
          run_command(kSweep + " report tiny --format csv --table " + table + " --db " + f.db);
      REQUIRE(cli.status == 0);
      const auto blocks = csv_blocks(cli.output);
      REQUIRE(api["tables"].size() == blocks.size());
      REQUIRE(blocks.size() >= 1);
      for (size_t i = 0; i < blocks.size(); ++i) check_csv_matches(blocks[i], api["tables"][i]);
      // The cells' text is what the Markdown table prints, row by row.
      const std::string md =
          run_command(kSweep + " report tiny --table " + table + " --db " + f.db).output;
      for (const auto& t : api["tables"])
        for (const auto& row : t["rows"]) {
          std::string line = "|";
          for (const auto& cell : row) line += " " + cell.value("text", std::string()) + " |";
          CHECK_MESSAGE(md.find(line) != std::string::npos, line);
        }
    }
    // The summary has numbers with a spread over the two seeds: the comparison is not vacuous.
    const Json summary = get_ok(server, "/api/report?sweep=tiny&table=summary")["tables"][0];
    int with_std = 0;
    for (const auto& row : summary["rows"])
      for (const auto& cell : row) with_std += has_std(cell);
    CHECK(with_std >= 2);
  }

  SUBCASE("progress: runs per status, steps done and time left as sweep status prints them") {
    const Json sweeps = get_ok(server, "/api/sweeps")["sweeps"];
    REQUIRE(sweeps.size() == 2);
    for (const auto& s : sweeps) {
      auto status =
          run_command(kSweep + " status " + s["name"].get<std::string>() + " --db " + f.db);
      REQUIRE(status.status == 0);
      std::string line =
          fmt::format("{}: {} runs", s["name"].get<std::string>(), s["run_count"].get<int>());
      for (const auto& [k, n] : s["per_status"].items())
        line += fmt::format(", {} {}", n.get<int>(), k);
      line += fmt::format("; {:.1f}% of steps", 100 * s["fraction"].get<double>());
      CHECK_MESSAGE(status.output.find(line) != std::string::npos, status.output);
    }
    CHECK(sweeps[0]["name"] == "tiny");
    CHECK(sweeps[0]["per_status"]["finished"] == 4);
    CHECK(sweeps[0]["active"] == false);
    CHECK(sweeps[1]["name"] == "live");
    // 10 of 80 steps: the running run is at step 10 of 40, the pending one at 0.
    CHECK(sweeps[1]["fraction"].get<double>() == doctest::Approx(10.0 / 80.0));
    CHECK(sweeps[1]["active"] == true);
    CHECK(sweeps[1]["seconds_left"].is_number());
  }

  SUBCASE("curves: the data of sweep plot, point by point, with its colours") {
    testing::TempDir out;
    for (const std::string x : {"step", "wall", "tokens"}) {
      CAPTURE(x);
      auto plot = run_command(kSweep + " plot tiny --metric 'eval*/loss' --x " + x + " --out " +
                              (out / ("p_" + x + ".png")) + " --db " + f.db);
      const std::string dat = testing::read_text(out / ("p_" + x + ".dat"));
      REQUIRE_MESSAGE(!dat.empty(), plot.output);
      const Json api =
          get_ok(server, "/api/curves?sweep=tiny&metric=" + encode("eval*/loss") + "&x=" + x);
      // .dat: "# index I key K variant V seeds S", a header line, then x step n mean std min max.
      std::vector<std::pair<std::string, std::vector<std::vector<double>>>> blocks;
      std::istringstream in(dat);
      for (std::string line; std::getline(in, line);) {
        if (line.rfind("# index", 0) == 0) {
          blocks.push_back({line, {}});
        } else if (!line.empty() && line[0] != '#' && !blocks.empty()) {
          std::istringstream fields(line);
          std::vector<double> v(7);
          for (double& d : v) fields >> d;
          blocks.back().second.push_back(v);
        }
      }
      REQUIRE(api["series"].size() == blocks.size());
      REQUIRE(blocks.size() >= 2);  // eval/loss of dense and mot, and mot's discrete mode
      for (size_t i = 0; i < blocks.size(); ++i) {
        const Json& s = api["series"][i];
        CHECK(blocks[i].first ==
              fmt::format("# index {} key {} variant {} seeds {}", i, s["key"].get<std::string>(),
                          s["variant"].get<std::string>(), s["seeds"].get<int>()));
        REQUIRE(s["points"].size() == blocks[i].second.size());
        REQUIRE(!blocks[i].second.empty());
        for (size_t p = 0; p < blocks[i].second.size(); ++p)
          for (size_t c = 0; c < 7; ++c)
            CHECK(s["points"][p][c].get<double>() ==
                  doctest::Approx(blocks[i].second[p][c]).epsilon(1e-9));
      }
      // The colours are the plot's: the i-th variant's "lc rgb" in the gnuplot script.
      const std::string gp = testing::read_text(out / ("p_" + x + ".gp"));
      for (const auto& s : api["series"])
        CHECK(gp.find(fmt::format("lc rgb \"{}\" dt {} title \"{} (",
                                  s["colour"].get<std::string>(), s["dash"].get<int>(),
                                  s["variant"].get<std::string>())) != std::string::npos);
    }
    const Json sweep = get_ok(server, "/api/sweep?name=tiny");
    REQUIRE(sweep["variants"].size() == 2);
    CHECK(sweep["variants"][0]["colour"] != sweep["variants"][1]["colour"]);
    CHECK(sweep["metric_keys"].size() > 3);
    CHECK(sweep["runs"].size() == 4);
  }

  SUBCASE("a run: config, status, attempts and every metric as stored") {
    const Json sweep = get_ok(server, "/api/sweep?name=tiny");
    const int64_t id = sweep["runs"][1]["run_id"];
    const Json run = get_ok(server, fmt::format("/api/run?id={}", id));
    Store store(f.db, OpenMode::read_only);
    const auto row = store.run(id);
    REQUIRE(row);
    CHECK(run["status"] == "finished");
    CHECK(run["attempt"] == row->attempt);
    CHECK(run["config"] == Json::parse(row->config_json));
    CHECK(run["sweeps"][0]["sweep"] == "tiny");
    const auto keys = store.metric_keys(id);
    REQUIRE(keys.size() > 3);
    CHECK(run["metrics"].size() == keys.size());
    for (const auto& key : keys) {
      const auto series = store.metric_series(id, key);
      const Json& m = run["metrics"][key];
      REQUIRE(m["step"].size() == series.size());
      for (size_t i = 0; i < series.size(); ++i) {
        CHECK(m["step"][i] == series[i].step);
        if (std::isnan(series[i].value))
          CHECK(m["value"][i].is_null());
        else
          CHECK(m["value"][i].get<double>() == series[i].value);
      }
    }
  }

  SUBCASE("the page and Chart.js come from the binary") {
    Answer page = get(server, "/sweep?name=tiny");
    CHECK(page.status == 200);
    CHECK(page.text.find("<script src=\"/chart.js\">") != std::string::npos);
    Answer chart = get(server, "/chart.js");
    CHECK(chart.status == 200);
    CHECK(chart.text.find("Chart.js v3") != std::string::npos);
    CHECK(chart.text.size() > 100000);
  }

  CHECK(server.stop() == 0);  // SIGTERM stops it cleanly
}

TEST_CASE("sweep serve: unknown names are 404 and hostile requests 4xx, the database unchanged") {
  ServeFixture f;
  {  // settle the WAL into the database file, so that its bytes say everything
    Store store(f.db);
    sqlite3_exec(store.handle(), "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  }
  const std::string before = file_bytes(f.db);
  const std::string wal_before = file_bytes(f.db + "-wal");
  ServeProcess server(f.db);

  const std::vector<std::pair<std::string, int>> requests = {
      {"/api/sweep?name=nope", 404},
      {"/api/sweep?name=" + encode("tiny'; DROP TABLE runs; --"), 404},
      {"/api/sweep?name=" + encode("tiny\" OR 1=1"), 404},
      {"/api/report?sweep=" + encode("x' UNION SELECT * FROM runs --"), 404},
      {"/api/report?sweep=tiny&table=" + encode("summary; DELETE FROM metrics"), 400},
      {"/api/curves?sweep=tiny&metric=no/such/key", 404},
      {"/api/curves?sweep=tiny&metric=" + encode("eval/loss' OR '1'='1"), 404},
      {"/api/curves?sweep=tiny&metric=eval/loss&x=" + encode("step; DROP TABLE x"), 400},
      {"/api/curves?sweep=tiny", 400},
      {"/api/run?id=999999", 404},
      {"/api/run?id=" + encode("1 OR 1=1"), 400},
      {"/api/run?id=-1", 400},
      {"/api/run?id=99999999999999999999999", 400},
      {"/api/run?id=", 400},
      {"/api/run?id=1&id=2", 400},
      {"/api/sweeps?debug=1", 400},
      {"/api/sweep?name=" + std::string(2000, 'a'), 400},
      {"/api/sweep?name=%zz%", 404},
      {"/api/sweep?name=%00tiny", 404},
      {"/api/nothing", 404},
      {"/../../../../etc/passwd", 404},
      {"/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404},
      {"/api/../../../etc/passwd", 404},
      {"/chart.js/../../etc/passwd", 404},
      {"/sweep/../../results.db", 404},
      {"/api/sweep?" + std::string(20000, 'x'), 414},
  };
  for (const auto& [path, status] : requests) {
    CAPTURE(path.substr(0, 100));
    Answer a = get(server, path);
    CHECK(a.status == status);
    // Every refusal says why in JSON, and nothing of the file system comes back.
    CHECK(a.body.is_object());
    CHECK(a.body.contains("error"));
    CHECK(a.text.find("root:") == std::string::npos);
  }

  auto client = server.client();
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    CAPTURE(method);
    httplib::Request req;
    req.method = method;
    req.path = "/api/sweeps";
    req.body = "{}";
    auto res = client.send(req);
    REQUIRE(res);
    CHECK(res->status == 405);
  }
  // A page of another site pointed at 127.0.0.1 through its own name (DNS rebinding).
  CHECK(get(server, "/api/sweeps", {{"Host", "evil.example:80"}}).status == 403);

  // A request that is not HTTP at all.
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string junk = "GARBAGE \x01\x02 %%% HTTP/9\r\nno header\r\n\r\n";
    REQUIRE(::write(fd, junk.data(), junk.size()) == ssize_t(junk.size()));
    char buf[512] = {};
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    const std::string reply(buf, n > 0 ? size_t(n) : 0);
    CHECK((reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0));
  }

  // Still serving, with every run still there, and the file not touched.
  CHECK(get_ok(server, "/api/sweep?name=tiny")["runs"].size() == 4);
  CHECK(server.stop() == 0);
  CHECK(file_bytes(f.db) == before);
  CHECK(file_bytes(f.db + "-wal") == wal_before);
}

TEST_CASE("sweep serve: bad arguments are refused with exit status 2 and nothing written") {
  testing::TempDir dir;
  SUBCASE("a database that does not exist is not created") {
    auto r = run_command(kSweep + " serve --port 0 --db " + (dir / "none.db"));
    CHECK(r.status == 2);
    CHECK(r.output.find("none.db") != std::string::npos);
    CHECK(!std::filesystem::exists(dir / "none.db"));
  }
  SUBCASE("a file that is not a mixlab database is left as it was") {
    testing::write_text(dir / "notes.db", "not a database\n");
    auto r = run_command(kSweep + " serve --port 0 --db " + (dir / "notes.db"));
    CHECK(r.status == 2);
    CHECK(testing::read_text(dir / "notes.db") == "not a database\n");
  }
  SUBCASE("a port out of range, or one already taken") {
    ServeFixture f;
    auto r = run_command(kSweep + " serve --port 70000 --db " + f.db);
    CHECK(r.status == 2);
    ServeProcess first(f.db);
    r = run_command(kSweep + " serve --port " + std::to_string(first.port()) + " --db " + f.db);
    CHECK(r.status == 2);
    CHECK(r.output.find("--port") != std::string::npos);
  }
}

TEST_CASE("sweep serve: a sweep writing meanwhile is never blocked and never seen half-written") {
  ServeFixture f;
  ServeProcess server(f.db);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::string> torn;
  // The reader: every answer about the running run is one consistent state, where each of its
  // keys has the same number of steps and the run's last_step is the last logged step.
  std::thread reader([&] {
    while (!done) {
      auto client = server.client();
      auto res = client.Get(fmt::format("/api/run?id={}", f.live_run).c_str());
      if (!res || res->status != 200) {
        torn.push_back(res ? res->body : "no answer");
        continue;
      }
      const Json run = Json::parse(res->body);
      const auto& eval = run["metrics"]["eval/loss"]["step"];
      const auto& train = run["metrics"]["train/loss"]["step"];
      if (eval.size() != train.size() || eval.back() != run["last_step"])
        torn.push_back(res->body.substr(0, 200));
      ++reads;
    }
  });
  {
    Store store(f.db);
    // No waiting for locks: if a read ever held the writer up, log_step would fail at once.
    sqlite3_busy_timeout(store.handle(), 0);
    for (int64_t step = 11; (step < 400 || reads < 20) && step < 20000; ++step)
      f.log(store, step, 2.0);
  }
  done = true;
  reader.join();
  CHECK(reads >= 20);
  CHECK_MESSAGE(torn.empty(), (torn.empty() ? "" : torn.front()));
}

TEST_CASE("sweep serve: the page in headless Chromium shows the tables and charts, and updates") {
  const std::string chromium = "/usr/bin/chromium";
  if (::access(chromium.c_str(), X_OK) != 0) {
    MESSAGE("skipped: Chromium is not installed (apt-get install chromium)");
    return;
  }
  ServeFixture f;
  ServeProcess server(f.db);
  testing::TempDir profile;
  // Chromium's page as it stands when its virtual time runs out (`what` "--dump-dom"), or a
  // screenshot; Chromium's own chatter on stderr is dropped.
  auto browse = [&](const std::string& url, int budget_ms, const std::string& what) {
    const std::string dom = profile / "dom.html";
    auto r = run_command(
        fmt::format("timeout 180 {} --headless --no-sandbox --disable-gpu --no-first-run "
                    "--user-data-dir={} --virtual-time-budget={} {} '{}' >{} 2>/dev/null",
                    chromium, profile / "chrome", budget_ms, what, url, dom));
    r.output = testing::read_text(dom);
    return r;
  };

  SUBCASE("a finished sweep: every report table, a chart per key, no polling") {
    auto dom =
        browse(server.url("/sweep?name=tiny&metric=" + encode("eval*/loss")), 5000, "--dump-dom");
    REQUIRE(dom.status == 0);
    INFO(dom.output.substr(0, 3000));
    CHECK(dom.output.find("<div id=\"error\"></div>") != std::string::npos);
    // Every table of the report, with the Markdown's cells.
    const Json report = get_ok(server, "/api/report?sweep=tiny");
    REQUIRE(report["tables"].size() >= 2);
    for (const auto& t : report["tables"]) {
      CHECK(dom.output.find("data-table=\"" + t["name"].get<std::string>() + "\"") !=
            std::string::npos);
      for (const auto& row : t["rows"])
        for (const auto& cell : row)
          if (cell["kind"] == "number")
            CHECK(dom.output.find("<td class=\"num\">" + html_text(cell["text"]) + "</td>") !=
                  std::string::npos);
    }
    // One panel per matching key, each drawn by Chart.js (the page marks a drawn canvas).
    CHECK(dom.output.find("data-key=\"eval/loss\"") != std::string::npos);
    const std::regex drawn(R"(<canvas[^>]*data-drawn="[1-9])");
    CHECK(std::regex_search(dom.output, drawn));
    CHECK(dom.output.find("data-last-step=\"12\"") != std::string::npos);
    CHECK(dom.output.find("data-polling=\"off\"") != std::string::npos);
    // Every run is listed with its status.
    CHECK(dom.output.find("class=\"status-finished\">finished<") != std::string::npos);

    // The screenshot, for people (README) and for looking at: under the build folder.
    const std::string png =
        (std::filesystem::path(kSweep).parent_path() / "serve_page.png").string();
    std::filesystem::remove(png);
    auto shot = browse(server.url("/sweep?name=tiny"), 5000,
                       "--screenshot=" + png + " --window-size=1280,1500 --hide-scrollbars");
    CHECK(shot.status == 0);
    CHECK(std::filesystem::file_size(png) > 20000);
  }

  SUBCASE("a running sweep: a step logged while the page is open appears without a reload") {
    // The browser polls every 2 s of its (virtual) time for 60 s; the step is logged once the
    // server has answered the page's first curves request, so the page first drew without it.
    auto dom = std::async(std::launch::async, [&] {
      return browse(server.url("/sweep?name=live"), 60000, "--dump-dom");
    });
    const bool seen = server.wait_for(
        [](const std::string& out) {
          return out.find("GET /api/curves?sweep=live") != std::string::npos;
        },
        120);
    REQUIRE(seen);
    {
      Store store(f.db);
      f.log(store, 30, 1.25);
    }
    const auto result = dom.get();
    REQUIRE(result.status == 0);
    INFO(result.output.substr(0, 3000));
    const std::regex updates(R"re(data-updates="(\d+)")re");
    std::smatch m;
    REQUIRE(std::regex_search(result.output, m, updates));
    CHECK(std::stoi(m[1]) >= 2);
    CHECK(result.output.find("data-polling=\"on\"") != std::string::npos);
    CHECK(result.output.find("data-key=\"eval/loss\" data-points=\"3\" data-last-step=\"30\"") !=
          std::string::npos);
    // The runs table follows too: the running run is at step 30.
    CHECK(result.output.find("<td class=\"num\">30</td>") != std::string::npos);
  }
}
