#include "coordinator/http_routes.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"

namespace nightshift::coordinator {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `text`, which starts at `offset` of the target (for messages).
absl::StatusOr<std::string> Decode(absl::string_view text, size_t offset, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const size_t at = offset + i;
    char c = text[i];
    if (c == '%') {
      const bool complete = i + 2 < text.size();
      const int hi = complete ? HexValue(text[i + 1]) : -1;
      const int lo = complete ? HexValue(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad percent-escape at offset ", at, " of the request target"));
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("control character at offset ", at, " of the request target"));
    }
    out += c;
  }
  return out;
}

// The enum value whose name, without `prefix`, is `text` (any case);
// UNSPECIFIED never matches.
template <typename Enum>
absl::StatusOr<Enum> EnumValue(const google::protobuf::EnumDescriptor* d, absl::string_view prefix,
                               absl::string_view parameter, absl::string_view text) {
  std::vector<std::string> names;
  for (int i = 0; i < d->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* v = d->value(i);
    if (v->number() == 0) continue;
    std::string name = absl::AsciiStrToLower(absl::StripPrefix(v->name(), prefix));
    if (absl::EqualsIgnoreCase(name, text)) return static_cast<Enum>(v->number());
    names.push_back(std::move(name));
  }
  return absl::InvalidArgumentError(absl::StrCat("query parameter ", parameter, ": '", text,
                                                 "' is not one of ", absl::StrJoin(names, ", ")));
}

}  // namespace

absl::StatusOr<Route> ParseRoute(absl::string_view path, absl::string_view query) {
  if (path.empty() || path[0] != '/') {
    return absl::NotFoundError(absl::StrCat("no such path: ", absl::CEscape(path)));
  }
  absl::string_view trimmed = path.size() > 1 ? absl::StripSuffix(path, "/") : path;
  std::vector<std::string> segments;
  size_t offset = 1;
  for (absl::string_view raw : absl::StrSplit(trimmed.substr(1), '/')) {
    absl::StatusOr<std::string> segment = Decode(raw, offset, /*plus_is_space=*/false);
    if (!segment.ok()) return segment.status();
    segments.push_back(*std::move(segment));
    offset += raw.size() + 1;
  }
  Route route;
  std::vector<absl::string_view> known;  // query parameters of the path
  const size_t n = segments.size();
  if (n == 1 && segments[0].empty()) {
    route.endpoint = Endpoint::kDashboard;
    known = {"token"};
  } else if (n == 2 && segments[0] == "assets" && !segments[1].empty()) {
    route.endpoint = Endpoint::kAsset;
    route.asset = segments[1];
  } else if (n == 1 && segments[0] == "healthz") {
    route.endpoint = Endpoint::kHealth;
  } else if (n == 1 && segments[0] == "metrics") {
    route.endpoint = Endpoint::kMetrics;
  } else if (n >= 2 && segments[0] == "v1" && segments[1] == "jobs") {
    if (n == 2) {
      route.endpoint = Endpoint::kJobs;
      known = {"state"};
    } else if (n == 3 && !segments[2].empty()) {
      route.endpoint = Endpoint::kJob;
      route.job_id = segments[2];
    } else if (n == 4 && !segments[2].empty() && segments[3] == "history") {
      route.endpoint = Endpoint::kJobHistory;
      route.job_id = segments[2];
    } else {
      return absl::NotFoundError(absl::StrCat("no such path: ", absl::CEscape(path)));
    }
  } else if (n == 2 && segments[0] == "v1" && segments[1] == "workers") {
    route.endpoint = Endpoint::kWorkers;
    known = {"pool", "state", "page_size", "page_token"};
  } else if (n == 2 && segments[0] == "v1" && segments[1] == "models") {
    route.endpoint = Endpoint::kModels;
    known = {"name"};
  } else {
    return absl::NotFoundError(absl::StrCat("no such path: ", absl::CEscape(path)));
  }

  std::map<std::string, std::string> params;
  offset = path.size() + 1;  // the query starts after the '?'
  for (absl::string_view piece : absl::StrSplit(query, '&')) {
    const size_t at = offset;
    offset += piece.size() + 1;
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    absl::StatusOr<std::string> name = Decode(piece.substr(0, eq), at, /*plus_is_space=*/true);
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> value = eq == absl::string_view::npos
                                            ? std::string()
                                            : Decode(piece.substr(eq + 1), at + eq + 1, true);
    if (!value.ok()) return value.status();
    if (std::find(known.begin(), known.end(), *name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown query parameter '", absl::CEscape(*name), "' for ", absl::CEscape(trimmed),
          known.empty() ? " (it takes none)"
                        : absl::StrCat(" (known: ", absl::StrJoin(known, ", "), ")")));
    }
    if (!params.emplace(*name, *value).second) {
      return absl::InvalidArgumentError(absl::StrCat("query parameter ", *name, " given twice"));
    }
  }
  for (const auto& [name, value] : params) {
    if (route.endpoint == Endpoint::kDashboard) {
      route.login_token = value;
    } else if (route.endpoint == Endpoint::kModels) {
      route.model_name = value;
    } else if (name == "page_token") {
      route.page_token = value;
    } else if (name == "page_size") {
      if (!absl::SimpleAtoi(value, &route.page_size) || route.page_size < 1 ||
          route.page_size > 10000) {
        return absl::InvalidArgumentError(absl::StrCat("page_size: '", absl::CEscape(value),
                                                       "' is not a number from 1 to 10000"));
      }
    } else if (route.endpoint == Endpoint::kJobs) {
      absl::StatusOr<v1::JobState> s =
          EnumValue<v1::JobState>(v1::JobState_descriptor(), "JOB_STATE_", name, value);
      if (!s.ok()) return s.status();
      route.job_state = *s;
    } else if (name == "pool") {
      absl::StatusOr<v1::WorkerPool> p =
          EnumValue<v1::WorkerPool>(v1::WorkerPool_descriptor(), "WORKER_POOL_", name, value);
      if (!p.ok()) return p.status();
      route.pool = *p;
    } else {
      absl::StatusOr<v1::WorkerState> s =
          EnumValue<v1::WorkerState>(v1::WorkerState_descriptor(), "WORKER_STATE_", name, value);
      if (!s.ok()) return s.status();
      route.worker_state = *s;
    }
  }
  return route;
}

}  // namespace nightshift::coordinator
