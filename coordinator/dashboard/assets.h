// The dashboard's files (index.html, login.html, dashboard.js,
// dashboard.css, and uPlot's script and styles from third_party/uplot),
// compiled into the coordinator by embed_assets.py. Immutable.
#ifndef NIGHTSHIFT_COORDINATOR_DASHBOARD_ASSETS_H_
#define NIGHTSHIFT_COORDINATOR_DASHBOARD_ASSETS_H_

#include "absl/strings/string_view.h"

namespace nightshift::coordinator::dashboard {

struct Asset {
  absl::string_view name;          // its file's base name: "dashboard.js"
  absl::string_view content_type;  // "text/javascript; charset=utf-8"
  absl::string_view data;
};

// The asset named `name`; nullptr if none is.
const Asset* FindAsset(absl::string_view name);

}  // namespace nightshift::coordinator::dashboard

#endif  // NIGHTSHIFT_COORDINATOR_DASHBOARD_ASSETS_H_
