// BuildTimeline: a vehicle's planned trips (trip_plan.h) turned into the
// VehicleState steps of its trace. Internal to fleet/.
//
// The vehicle starts day 0 parked at home. Then, for each stay and trip:
//   1. Arrival: parked (ignition OFF, gear PARK), occupied; the network of
//      the place (home: Wi-Fi if the spot reaches it; elsewhere cellular,
//      or satellite for a satellite vehicle, 5% of stays without coverage).
//   2. 0.5-3 min later the driver is out (unoccupied) and may plug in:
//      home  with a home charger and a stay of 1 h or more: on evening
//            arrivals (15:00-04:00) 85% of the time, at any time when the
//            state of charge is under 50%; until the driver leaves.
//      work  with a workplace charger, 90% of arrivals: a session of
//            log-normal length with [CP]'s mean of 2.6 h.
//      elsewhere, under 50% (25% with a home charger), stays of 20 min or
//            more: public Level 2 (7.2 kW) for stays of 2 h or more, until
//            the driver leaves; else DC fast (50 kW) to 80%.
//      "Charging" means plugged into a live charger, as [CP] counts a
//      session: the state of charge rises at the charger's power (90%
//      efficient) to the limit (90% on AC) and then holds.
//   3. Steps while parked: the charge reaching its limit, a session's end,
//      midnight (the metered link's daily budget starts again) and, every
//      update_minutes, a step if the charge or a temperature moved enough.
//   4. 0.5-2 min before the next trip the driver is in (occupied), the
//      cable out.
//   5. The trip: ignition ON, gear DRIVE, occupied, metered link; the
//      charge falls by the distance (46.3 km/h, [AAA]) times the
//      vehicle's kWh/km, the budget by 60 MB an hour of the car's own
//      traffic (assumption). Then 1. at the destination.
// Temperatures follow the load and the weather (thermal.h).
#ifndef NIGHTSHIFT_FLEET_INTERNAL_STATE_TIMELINE_H_
#define NIGHTSHIFT_FLEET_INTERNAL_STATE_TIMELINE_H_

#include <cstdint>
#include <vector>

#include "fleet/internal/trip_plan.h"
#include "fleet/vehicle_traces.h"

namespace nightshift::fleet::internal {

// Steps in [0, options.days days); `trips` should reach past that (the
// last stay's predicted departure is the first trip after it).
VehicleTrace BuildTimeline(const FleetTraceOptions& options, const VehicleProfile& profile,
                           int64_t vehicle_index, const std::vector<PlannedTrip>& trips);

}  // namespace nightshift::fleet::internal

#endif  // NIGHTSHIFT_FLEET_INTERNAL_STATE_TIMELINE_H_
