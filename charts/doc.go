/*
Copyright 2026 The m2m-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package charts holds the Helm chart of the install (charts/m2m-operator) and its tests: with
// default values the chart renders what `make render` renders from config/default, every value
// maps to a flag the binary has, the schema refuses bad values, and the chart installs with the
// real Helm into a real API server (envtest). The chart's CRDs, RBAC rules and monitoring files
// are copies of config/ kept fresh by hack/chart-sync.sh (`make generate`).
package charts
