#include "fleet/trace_csv.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace nightshift::fleet {
namespace {

using State = v1::VehicleState;

// A valid row of vehicle v1 at `at` seconds.
std::string Row(absl::string_view vehicle = "v1", absl::string_view at = "60") {
  return absl::StrCat(vehicle, ",", at,
                      ",OFF,PARK,0,1,7.2,0.5,200,20,21,24,WIFI,0,500000000,3600,HOME\n");
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::string Refusal(const std::string& text) {
  const absl::StatusOr<VehicleTraces> traces = ParseTraceCsv(text, "fleet.csv");
  EXPECT_FALSE(traces.ok());
  EXPECT_EQ(traces.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(traces.status().message());
}

void ExpectSameTrace(const VehicleTrace& a, const VehicleTrace& b, const std::string& vehicle) {
  ASSERT_EQ(a.size(), b.size()) << vehicle;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].entry.SerializeAsString(), b[i].entry.SerializeAsString())
        << vehicle << " step " << i;
    EXPECT_EQ(a[i].predicted_departure_seconds, b[i].predicted_departure_seconds)
        << vehicle << " step " << i;
    EXPECT_EQ(a[i].place, b[i].place) << vehicle << " step " << i;
  }
}

TEST(TraceCsvTest, GeneratedTracesRoundTripExactly) {
  FleetTraceOptions options;
  options.days = 2;
  options.satellite_share = 0.2;
  options.ev_share = 0.9;
  absl::StatusOr<FleetTraceGenerator> generator = FleetTraceGenerator::Create(options);
  ASSERT_TRUE(generator.ok());
  VehicleTraces written;
  for (int v = 0; v < 100; ++v) written[VehicleName(v)] = generator->Generate(v);
  const std::string path = TempPath("round_trip.csv");
  ASSERT_TRUE(WriteTraceCsv(path, written).ok());
  const absl::StatusOr<VehicleTraces> read = ReadTraceCsv(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), written.size());
  for (const auto& [vehicle, trace] : written) ExpectSameTrace(trace, read->at(vehicle), vehicle);
}

TEST(TraceCsvTest, HeaderWritesEveryColumn) {
  EXPECT_EQ(TraceCsvHeader(),
            "vehicle,at_seconds,ignition,gear,occupied,charging,charger_power_kw,state_of_charge,"
            "estimated_range_km,pack_temperature_c,cabin_temperature_c,compute_temperature_c,"
            "network,metered,data_budget_bytes,predicted_departure_seconds,place\n");
}

TEST(TraceCsvTest, ReadsColumnsInAnyOrderAndInterleavedVehicles) {
  const std::string text =
      "at_seconds,vehicle,network,metered,data_budget_bytes,ignition,gear,occupied,charging,"
      "charger_power_kw,state_of_charge,estimated_range_km,pack_temperature_c,"
      "cabin_temperature_c,compute_temperature_c\r\n"
      "0,car-a,CELLULAR,true,100,ON,DRIVE,true,false,0,0.25,80.5,30,21,50\r\n"
      "\r\n"
      "10,car-b,SATELLITE,1,0,OFF,PARK,0,1,50,1,300,-3.5,-10,0\r\n"
      "10,car-a,NONE,0,7,OFF,PARK,1,0,0,0.24,79,31,22,40\r\n";
  const absl::StatusOr<VehicleTraces> traces = ParseTraceCsv(text, "log.csv");
  ASSERT_TRUE(traces.ok()) << traces.status();
  ASSERT_EQ(traces->size(), 2);
  const VehicleTrace& a = traces->at("car-a");
  ASSERT_EQ(a.size(), 2);
  EXPECT_EQ(a[0].entry.state().ignition(), State::IGNITION_ON);
  EXPECT_EQ(a[0].entry.state().network(), State::NETWORK_CELLULAR);
  EXPECT_TRUE(a[0].entry.state().metered());
  EXPECT_EQ(a[0].entry.state().estimated_range_km(), 80.5);
  EXPECT_EQ(a[1].entry.at_seconds(), 10);
  EXPECT_EQ(a[1].entry.state().data_budget_bytes(), 7);
  EXPECT_FALSE(a[1].predicted_departure_seconds.has_value());
  EXPECT_EQ(a[1].place, Place::kUnknown);
  const VehicleTrace& b = traces->at("car-b");
  ASSERT_EQ(b.size(), 1);
  EXPECT_TRUE(b[0].entry.state().charging());
  EXPECT_EQ(b[0].entry.state().pack_temperature_c(), -3.5);
}

TEST(TraceCsvTest, EmptyOptionalFieldsAreUnknown) {
  const absl::StatusOr<VehicleTraces> traces = ParseTraceCsv(
      TraceCsvHeader() + "v1,0,OFF,PARK,0,0,0,0.5,200,20,21,24,WIFI,0,0,,\n", "fleet.csv");
  ASSERT_TRUE(traces.ok()) << traces.status();
  EXPECT_FALSE(traces->at("v1")[0].predicted_departure_seconds.has_value());
  EXPECT_EQ(traces->at("v1")[0].place, Place::kUnknown);
}

TEST(TraceCsvTest, RefusesAWrongColumnCount) {
  EXPECT_EQ(Refusal(TraceCsvHeader() + Row() + "v1,70,OFF,PARK\n"),
            "fleet.csv:3: 4 columns where the header has 17");
}

TEST(TraceCsvTest, RefusesHeaderProblems) {
  EXPECT_EQ(Refusal("vehicle,speed\n"), "fleet.csv:1: unknown column 'speed' in the header");
  EXPECT_EQ(Refusal("vehicle,at_seconds,vehicle\n"),
            "fleet.csv:1: column vehicle appears twice in the header");
  EXPECT_EQ(Refusal(absl::StrReplaceAll(TraceCsvHeader(), {{"gear,", ""}})),
            "fleet.csv:1: the header has no column gear");
  EXPECT_EQ(Refusal(""), "fleet.csv: no header row (an empty file)");
}

TEST(TraceCsvTest, RefusesBadValuesNamingLineAndColumn) {
  const std::string header = TraceCsvHeader();
  auto with = [&](absl::string_view from, absl::string_view to) {
    return Refusal(header + Row() + absl::StrReplaceAll(Row("v1", "70"), {{from, to}}));
  };
  EXPECT_EQ(with(",0.5,", ",abc,"), "fleet.csv:3: column state_of_charge: 'abc' is not a number");
  EXPECT_EQ(with(",0.5,", ",1.7,"), "fleet.csv:3: column state_of_charge: '1.7' is not in [0, 1]");
  EXPECT_EQ(with(",0.5,", ",nan,"), "fleet.csv:3: column state_of_charge: 'nan' is not a number");
  EXPECT_EQ(with(",PARK,", ",P,"),
            "fleet.csv:3: column gear: 'P' is not one of PARK, REVERSE, NEUTRAL, DRIVE, "
            "UNSPECIFIED");
  EXPECT_EQ(with(",OFF,", ",off,"),
            "fleet.csv:3: column ignition: 'off' is not one of OFF, ACCESSORY, ON, UNSPECIFIED");
  EXPECT_EQ(with(",WIFI,", ",5G,"),
            "fleet.csv:3: column network: '5G' is not one of NONE, ETHERNET, WIFI, CELLULAR, "
            "SATELLITE, UNSPECIFIED");
  EXPECT_EQ(with(",HOME", ",GARAGE"),
            "fleet.csv:3: column place: 'GARAGE' is not one of DRIVING, HOME, WORK, ELSEWHERE");
  EXPECT_EQ(with("OFF,PARK,0,", "OFF,PARK,yes,"),
            "fleet.csv:3: column occupied: 'yes' is not 0, 1, false or true");
  EXPECT_EQ(with(",7.2,", ",-7.2,"),
            "fleet.csv:3: column charger_power_kw: '-7.2' is not in [0, 1000]");
  EXPECT_EQ(with(",24,", ",250,"),
            "fleet.csv:3: column compute_temperature_c: '250' is not in [-100, 200]");
  EXPECT_EQ(with(",500000000,", ",5e8,"),
            "fleet.csv:3: column data_budget_bytes: '5e8' is not a whole number");
  EXPECT_EQ(with(",500000000,", ",-1,"), "fleet.csv:3: column data_budget_bytes: '-1' is below 0");
  EXPECT_EQ(with(",3600,", ",soon,"),
            "fleet.csv:3: column predicted_departure_seconds: 'soon' is not a number");
  EXPECT_EQ(Refusal(header + Row("v1", "-5")), "fleet.csv:2: column at_seconds: '-5' is below 0");
  EXPECT_EQ(Refusal(header + Row("", "5")), "fleet.csv:2: column vehicle: '' is empty");
}

TEST(TraceCsvTest, RefusesTimeGoingBackWithinAVehicle) {
  EXPECT_EQ(Refusal(TraceCsvHeader() + Row("v1", "60") + Row("v2", "10") + Row("v1", "30")),
            "fleet.csv:4: column at_seconds: '30' is before 60, vehicle v1's time on line 2");
}

TEST(TraceCsvTest, RefusesAFileOrALineOverItsBound) {
  TraceCsvLimits limits;
  limits.max_line_bytes = 250;  // the header is 231
  const std::string long_row = Row(std::string(200, 'x'));
  const absl::StatusOr<VehicleTraces> line =
      ParseTraceCsv(TraceCsvHeader() + Row() + long_row, "fleet.csv", limits);
  EXPECT_EQ(line.status().message(), absl::StrCat("fleet.csv:3: a line of ", long_row.size() - 1,
                                                  " bytes is over the bound of 250 bytes"));

  const std::string path = TempPath("big.csv");
  std::ofstream(path) << TraceCsvHeader() << Row() << Row("v1", "70");
  limits = {};
  limits.max_file_bytes = 200;
  const absl::StatusOr<VehicleTraces> file = ReadTraceCsv(path, limits);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(file.status().message(),
            absl::StrCat(path, ": ", TraceCsvHeader().size() + 2 * Row().size(),
                         " bytes is over the bound of 200 bytes for a trace"));
}

TEST(TraceCsvTest, MissingFileIsNotFound) {
  const absl::StatusOr<VehicleTraces> traces = ReadTraceCsv(TempPath("no-such.csv"));
  EXPECT_EQ(traces.status().code(), absl::StatusCode::kNotFound);
}

TEST(TraceCsvTest, WriterRefusesNamesTheFormatCannotHold) {
  std::string out;
  EXPECT_EQ(AppendTraceCsvRows("a,b", {}, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendTraceCsvRows("", {}, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace nightshift::fleet
