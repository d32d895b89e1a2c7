#include "core/metrics.h"

namespace hub {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + EscapeLabel(labels[i].second) + "\"";
  }
  return out + "}";
}

}  // namespace

std::atomic<int64_t>& Metrics::Counter(const std::string& name, const Labels& labels,
                                       const std::string& help) {
  return Get(name, labels, help, "counter");
}

std::atomic<int64_t>& Metrics::Gauge(const std::string& name, const Labels& labels,
                                     const std::string& help) {
  return Get(name, labels, help, "gauge");
}

std::atomic<int64_t>& Metrics::Get(const std::string& name, const Labels& labels,
                                   const std::string& help, const char* type) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  }
  std::string key = RenderLabels(labels);
  auto it = f.series.find(key);
  if (it != f.series.end()) return *it->second;
  values_.emplace_back(0);
  f.series.emplace(key, &values_.back());
  return values_.back();
}

std::string Metrics::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    for (const auto& [labels, value] : f.series) {
      out += name + labels + " " + std::to_string(value->load()) + "\n";
    }
  }
  return out;
}

}  // namespace hub
