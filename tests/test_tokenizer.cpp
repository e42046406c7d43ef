// data.tokenizer "sentencepiece" (experiments/tokenizer.h) and data.corpus "english": the
// tokenizer round-trips text, trains deterministically, is trained once and then reused (its
// token streams too), sets the model's vocabulary; the english corpus splits by document and
// names its set-up command when it is missing. Small fixtures (a few KB, vocabulary 400), so
// every case takes well under a second.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "experiments/corpus.h"
#include "experiments/run_config.h"
#include "experiments/tokenizer.h"
#include "test_helpers.h"

using namespace mixlab;
namespace fs = std::filesystem;

namespace {

// Pseudo-English from a fixed word list and a fixed LCG: varied enough for a 400-piece model.
std::string fixture_text(uint64_t seed, int n_lines) {
  static const char* words[] = {
      "the",   "of",       "and",        "to",      "in",       "a",         "is",     "that",
      "for",   "it",       "as",         "was",     "with",     "be",        "by",     "on",
      "not",   "he",       "this",       "are",     "or",       "his",       "from",   "at",
      "which", "but",      "have",       "an",      "had",      "they",      "you",    "were",
      "their", "one",      "all",        "we",      "can",      "her",       "has",    "there",
      "been",  "if",       "more",       "when",    "will",     "would",     "who",    "so",
      "river", "mountain", "dictionary", "kernel",  "function", "argument",  "module", "letter",
      "whale", "captain",  "harbour",    "lantern", "quietly",  "Elizabeth", "London", "1913"};
  const int n_words = sizeof words / sizeof *words;
  std::string text;
  uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int line = 0; line < n_lines; ++line) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int len = 4 + int((x >> 33) % 10);
    for (int w = 0; w < len; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      if (w) text += ' ';
      text += words[(x >> 33) % n_words];
    }
    text += (x >> 40) % 3 ? ".\n" : ", said she.\n";
  }
  return text;
}

std::string file_bytes(const fs::path& p) {
  return testing::read_text(p.string());
}

std::string as_string(const torch::Tensor& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                     size_t(bytes.numel()));
}

Json config_with_data(const Json& data) {
  return {{"model", {{"d_model", 16}}}, {"ffn", {{"type", "dense"}}}, {"data", data},
          {"train", {{"steps", 4}}},    {"eval", Json::object()},     {"seed", 0}};
}

// The ConfigError that parsing `data` throws ("" when none).
std::string data_error(const Json& data) {
  try {
    parse_run_config(config_with_data(data), "c.json");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
    return e.key() + ": " + e.what();
  }
  return "";
}

// Sets an environment variable for the scope, restoring the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("sentencepiece: decode(encode(text)) is the text, for both model types") {
  testing::TempDir dir;
  const std::string training = fixture_text(1, 600);
  // Runs of spaces, tabs, blank lines, characters and bytes the model never saw.
  const std::string unseen = "  The  whale\tsaid:\n\n  na\xC3\xAFve \xE2\x9C\x93 {x} \x01~\n" +
                             fixture_text(2, 20) + "no newline at the end";
  for (const std::string type : {"unigram", "bpe"}) {
    CAPTURE(type);
    const fs::path model = dir.path() / (type + ".model");
    train_sentencepiece(training, {400, type}, model);
    SentencePieceTokenizer tok(model.string());
    CHECK(tok.vocab_size() == 400);
    for (const std::string& text : {training, unseen}) {
      const auto ids = tok.encode(text);
      CHECK(tok.decode(ids) == text);
      CHECK(ids.size() < text.size());  // the pieces are longer than bytes
    }
    // More threads give the same ids.
    CHECK(tok.encode(training, 3) == tok.encode(training, 1));
  }
}

TEST_CASE("sentencepiece: a long line cut before spaces gives the ids of the whole line") {
  testing::TempDir dir;
  const fs::path model = dir.path() / "m.model";
  train_sentencepiece(fixture_text(3, 600), {400, "unigram"}, model);
  std::string line = fixture_text(4, 400);  // ~20 KB: cut into ~4 KB sentences
  for (char& c : line)
    if (c == '\n') c = ' ';
  // The reference: SentencePiece on the whole line at once.
  SentencePieceTokenizer tok(model.string());
  const auto whole = tok.encode_whole(line);
  CHECK(whole.size() > 1000);
  CHECK(tok.encode(line) == whole);
}

TEST_CASE("sentencepiece training is deterministic: same model bytes in two folders") {
  testing::TempDir a, b;
  const std::string text = fixture_text(5, 800);
  for (const std::string type : {"unigram", "bpe"}) {
    CAPTURE(type);
    train_sentencepiece(text, {400, type}, a.path() / "m.model");
    train_sentencepiece(text, {400, type}, b.path() / "m.model");
    const std::string first = file_bytes(a.path() / "m.model");
    CHECK(first.size() > 1000);
    CHECK(first == file_bytes(b.path() / "m.model"));
    CHECK(SentencePieceTokenizer((a.path() / "m.model").string()).encode(text) ==
          SentencePieceTokenizer((b.path() / "m.model").string()).encode(text));
  }
}

TEST_CASE("sentencepiece: trained once, then the model and token streams are reused") {
  testing::TempDir dir;
  const std::string train = fixture_text(6, 500), validation = fixture_text(7, 50);
  int reads = 0;
  auto read_splits = [&] {
    ++reads;
    return std::pair{train, validation};
  };
  const SentencePieceOptions options{400, "unigram"};
  auto first = sentencepiece_corpus("0123456789abcdef (2 files: 10 bytes)", dir.path(), options,
                                    read_splits);
  CHECK(first.trained);
  CHECK(first.tokenized);
  CHECK(reads == 1);
  CHECK(first.model_file.parent_path() == dir.path() / ".tokenizers");
  CHECK(bool(first.train.scalar_type() == torch::kInt32));
  CHECK(first.vocab_size == 400);
  struct stat before {};
  REQUIRE(::stat(first.model_file.c_str(), &before) == 0);

  auto second = sentencepiece_corpus("0123456789abcdef (2 files: 10 bytes)", dir.path(), options,
                                     read_splits);
  CHECK_FALSE(second.trained);
  CHECK_FALSE(second.tokenized);
  CHECK(reads == 1);  // the text was not even read again
  CHECK(torch::equal(first.train, second.train));
  CHECK(torch::equal(first.validation, second.validation));
  struct stat after {};
  REQUIRE(::stat(second.model_file.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

  // The streams decode to the splits; uint16 on disk (24-byte header).
  SentencePieceTokenizer tok(first.model_file.string());
  auto ids = first.validation.contiguous();
  CHECK(tok.decode(std::vector<int32_t>(ids.data_ptr<int32_t>(),
                                        ids.data_ptr<int32_t>() + ids.numel())) == validation);
  const fs::path stream =
      dir.path() / ".tokenizers" / (first.model_file.stem().string() + ".validation.tok");
  CHECK(fs::file_size(stream) == 24 + 2 * uint64_t(ids.numel()));

  // Lost streams are tokenized again with the cached model; other options or another corpus
  // fingerprint get another model.
  fs::remove(stream);
  auto third = sentencepiece_corpus("0123456789abcdef (2 files: 10 bytes)", dir.path(), options,
                                    read_splits);
  CHECK_FALSE(third.trained);
  CHECK(third.tokenized);
  CHECK(torch::equal(first.validation, third.validation));
  auto other = sentencepiece_corpus("fedcba9876543210 (2 files: 10 bytes)", dir.path(), options,
                                    read_splits);
  CHECK(other.trained);
  CHECK(other.model_file != first.model_file);
  CHECK(tokenizer_key("x", {400, "bpe"}) != tokenizer_key("x", {400, "unigram"}));
  CHECK(tokenizer_key("x", {400, "bpe"}) != tokenizer_key("x", {401, "bpe"}));
}

TEST_CASE("sentencepiece: two processes' worth of concurrent loads train the model once") {
  testing::TempDir dir;
  const std::string train = fixture_text(8, 500), validation = fixture_text(9, 40);
  auto read_splits = [&] { return std::pair{train, validation}; };
  SentencePieceCorpus results[2];
  std::thread other([&] {
    results[1] =
        sentencepiece_corpus("f (1 files: 1 bytes)", dir.path(), {400, "bpe"}, read_splits);
  });
  results[0] = sentencepiece_corpus("f (1 files: 1 bytes)", dir.path(), {400, "bpe"}, read_splits);
  other.join();
  CHECK(int(results[0].trained) + int(results[1].trained) == 1);
  CHECK(torch::equal(results[0].train, results[1].train));
  // No temporary file is left behind.
  for (const auto& entry : fs::directory_iterator(dir.path() / ".tokenizers"))
    CHECK(entry.path().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("token stream files: uint16 up to 65536 pieces, int32 above, damage detected") {
  testing::TempDir dir;
  const std::vector<int32_t> small = {0, 1, 399, 65535, 7};
  write_token_file(dir / "a.tok", small, 65536);
  CHECK(fs::file_size(dir / "a.tok") == 24 + 2 * small.size());
  auto a = read_token_file(dir / "a.tok");
  REQUIRE(a.defined());
  CHECK(std::vector<int32_t>(a.data_ptr<int32_t>(), a.data_ptr<int32_t>() + a.numel()) == small);
  const std::vector<int32_t> large = {0, 65536, 99999, 3};
  write_token_file(dir / "b.tok", large, 100000);
  CHECK(fs::file_size(dir / "b.tok") == 24 + 4 * large.size());
  auto b = read_token_file(dir / "b.tok");
  REQUIRE(b.defined());
  CHECK(std::vector<int32_t>(b.data_ptr<int32_t>(), b.data_ptr<int32_t>() + b.numel()) == large);
  fs::resize_file(dir / "b.tok", 24 + 4 * 3);
  CHECK_FALSE(read_token_file(dir / "b.tok").defined());
  CHECK_FALSE(read_token_file(dir / "missing.tok").defined());
}

TEST_CASE("a corpus with data.tokenizer sentencepiece sets model.vocab_size and int32 tokens") {
  testing::TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  const Json data = {{"corpus", "text"},
                     {"path", corpus},
                     {"tokenizer", "sentencepiece"},
                     {"vocab_size", 300},
                     {"model_type", "bpe"}};
  RunConfig r = parse_run_config(config_with_data(data), "c.json");
  CHECK(r.model.vocab_size == 300);
  auto loaded = load_corpus(r.data);
  CHECK(bool(loaded->train.scalar_type() == torch::kInt32));
  CHECK(loaded->train.max().item<int64_t>() < 300);
  CHECK(loaded->train.numel() > 0);
  CHECK(loaded->description.find("SentencePiece bpe") != std::string::npos);
  CHECK(fs::is_directory(fs::path(corpus) / ".tokenizers"));
  // The same corpus with bytes is still bytes, with its old identity.
  const Json bytes = {{"corpus", "text"}, {"path", corpus}};
  RunConfig plain = parse_run_config(config_with_data(bytes), "c.json");
  CHECK(plain.model.vocab_size == 256);
  CHECK(plain.hash == content_hash(canonicalize(config_with_data(bytes))));
  CHECK(bool(load_corpus(plain.data)->train.scalar_type() == torch::kUInt8));
  // A vocabulary the text cannot fill is a one-line error on data.vocab_size.
  Json too_big = data;
  too_big["vocab_size"] = 50000;
  RunConfig big = parse_run_config(config_with_data(too_big), "c.json");
  CHECK_THROWS_AS(load_corpus(big.data), ConfigError);
}

TEST_CASE("data keys of sentencepiece: bad values are one-line errors naming the key") {
  CHECK(data_error({{"tokenizer", "sentencepiece"}}) == "");
  CHECK(data_error(
            {{"corpus", "english"}, {"tokenizer", "sentencepiece"}, {"vocab_size", 16384}}) == "");
  const std::string small = data_error({{"tokenizer", "sentencepiece"}, {"vocab_size", 10}});
  CHECK(small.find("data.vocab_size") == 0);
  CHECK(small.find("[300, 1048576]") != std::string::npos);
  CHECK(data_error({{"tokenizer", "sentencepiece"}, {"vocab_size", 2000000}})
            .find("data.vocab_size") == 0);
  CHECK(data_error({{"tokenizer", "sentencepiece"}, {"model_type", "wordpiece"}})
            .find("data.model_type") == 0);
  CHECK(data_error({{"vocab_size", 1000}}).find("data.vocab_size") == 0);
  CHECK(data_error({{"tokenizer", "bytes"}, {"model_type", "bpe"}}).find("data.model_type") == 0);
  CHECK(data_error({{"tokenizer", "wordpiece"}}).find("data.tokenizer") == 0);
  CHECK(data_error({{"corpus", "welsh"}}).find("data.corpus") == 0);
}

TEST_CASE("english: every document lands wholly in exactly one split, every 20th in validation") {
  testing::TempDir dir;
  const fs::path english = dir.path() / "english";
  fs::create_directories(english / "licenses");
  std::vector<std::string> docs;
  for (int i = 0; i < 45; ++i) {
    docs.push_back("<doc " + std::to_string(100 + i) + ">\n" + fixture_text(100 + i, 5) + "</doc " +
                   std::to_string(100 + i) + ">\n");
    testing::write_text((english / ("d" + std::to_string(100 + i) + ".txt")).string(), docs.back());
  }
  // Not documents: the manifest, licences and the marker.
  testing::write_text((english / "MANIFEST").string(), "<doc 999> manifest\n");
  testing::write_text((english / "licenses/x.copyright").string(), "<doc 998> licence\n");
  testing::write_text((english / ".complete").string(), "");
  DataConfig data;
  data.corpus = "english";
  data.path = english.string();
  auto corpus = load_corpus(data);
  const std::string train = as_string(corpus->train), validation = as_string(corpus->validation);
  for (int i = 0; i < 45; ++i) {
    CAPTURE(i);
    const bool in_train = train.find(docs[i]) != std::string::npos;
    const bool in_validation = validation.find(docs[i]) != std::string::npos;
    CHECK(in_train != in_validation);
    CHECK(in_validation == (i % 20 == 0));  // d100, d120, d140: sorted by name
    // No part of a document is in the other split either.
    const std::string tag = "<doc " + std::to_string(100 + i) + ">";
    CHECK((train.find(tag) != std::string::npos) == in_train);
    CHECK((validation.find(tag) != std::string::npos) == in_validation);
  }
  CHECK(train.find("<doc 99") == std::string::npos);
  CHECK(validation.find("<doc 99") == std::string::npos);
}

TEST_CASE("a missing english corpus is a one-line error naming the set-up command") {
  testing::TempDir empty;
  ScopedEnv data_dir("MIXLAB_DATA_DIR", empty.path().string());
  DataConfig data;
  data.corpus = "english";
  try {
    check_corpus_available(data);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "data.corpus");
    const std::string what = e.what();
    CHECK(what.find("bash scripts/setup.sh --corpus english") != std::string::npos);
    CHECK(what.find((empty.path() / "english").string()) != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
}
