#!/usr/bin/env bash
# Offline checks of the Salesforce kit with Salesforce's own tools (no org is
# needed or reached): every Apex class parses and is formatted (the Apex
# parser behind prettier-plugin-apex), apex-ls finds no issue against the
# platform's types (a wrong interface signature, a misspelled method, an
# unknown type or field), and PMD with the Apex security, best-practice,
# error-prone and performance categories and the AppExchange rules reports
# nothing of priority 1 or 2, the Lightning components' Jest tests pass
# (sfdx-lwc-jest), and the Salesforce CLI converts the project to
# Metadata API form (what `sf project deploy` sends). Needs Node.js and Java
# 17 (scripts/test.sh installs them); the CLI's Node.js 22 comes from npm.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules/prettier-plugin-apex ] || [ ! -d node_modules/@salesforce/code-analyzer-pmd-engine ] ||
  [ ! -d node_modules/@salesforce/cli ] || [ ! -x node_modules/node/bin/node ] ||
  [ ! -d node_modules/@salesforce/sfdx-lwc-jest ]; then
  bash ../../scripts/npm-install.sh
fi
command -v java >/dev/null || { echo "java is missing (Debian: openjdk-17-jre-headless)"; exit 1; }
LIB="$PWD/node_modules/@salesforce/code-analyzer-pmd-engine/dist/java-lib"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "--> Apex parses and is formatted (prettier-plugin-apex)"
npx --no-install prettier --check "force-app/**/*.cls"

echo "--> apex-ls: no issues"
java -cp "$LIB/*" io.github.apexdevtools.apexls.CheckForIssues -n -d warnings -w . > "$WORK/apex-ls.txt" 2>&1 || true
if [ -s "$WORK/apex-ls.txt" ]; then
  cat "$WORK/apex-ls.txt"
  echo "apex-ls found issues"
  exit 1
fi

echo "--> PMD: no finding of priority 1 or 2"
find "$PWD/force-app" -name '*.cls' | sort | python3 -c '
import json, sys
files = [line.strip() for line in sys.stdin if line.strip()]
json.dump({"ruleSetInputFile": sys.argv[1], "runDataPerLanguage": {"apex": {"filesToScan": files}}}, sys.stdout)
' "$PWD/pmd-rules.xml" > "$WORK/input.json"
echo "sfca/rulesets/AppExchange_apex.xml" > "$WORK/custom.txt"
java -cp "$LIB/*" com.salesforce.sfca.pmdwrapper.PmdWrapper describe "$WORK/rules.json" "$WORK/custom.txt" apex > /dev/null
java -cp "$LIB/*" com.salesforce.sfca.pmdwrapper.PmdWrapper run "$WORK/input.json" "$WORK/results.json" > /dev/null
python3 - "$WORK/rules.json" "$WORK/results.json" <<'PY'
import collections, json, sys
levels = {"High": 1, "Medium High": 2, "Medium": 3, "Medium Low": 4, "Low": 5}
priority = {rule["name"]: levels[rule["priority"]] for rule in json.load(open(sys.argv[1]))}
results = json.load(open(sys.argv[2]))
if results.get("processingErrors"):
    sys.exit(f"PMD could not process: {results['processingErrors']}")
findings = results.get("violations", [])
blocking = [v for v in findings if priority.get(v["rule"], 1) <= 2]
for v in blocking:
    where = v["codeLocation"]
    print(f"priority {priority.get(v['rule'], 1)}: {v['rule']}: {v['message']} ({where['file']}:{where['startLine']})")
counts = collections.Counter(priority.get(v["rule"], 1) for v in findings)
print(f"PMD findings by priority: {dict(sorted(counts.items()))}")
sys.exit(1 if blocking else 0)
PY
echo "--> permission sets name only classes, fields and objects the project has"
python3 - <<'PY'
import glob, os, sys, xml.etree.ElementTree as ET
ns = {"m": "http://soap.sforce.com/2006/04/metadata"}
base = "force-app/main/default"
classes = {os.path.basename(p)[:-4] for p in glob.glob(f"{base}/classes/*.cls")}
fields = {f"{p.split('/')[-3]}.{os.path.basename(p).split('.')[0]}" for p in glob.glob(f"{base}/objects/*/fields/*.field-meta.xml")}
objects = {os.path.basename(os.path.dirname(p)) for p in glob.glob(f"{base}/objects/*/*.object-meta.xml")}
principals = set()
for p in glob.glob(f"{base}/externalCredentials/*.externalCredential-meta.xml"):
    name = os.path.basename(p).split(".")[0]
    for param in ET.parse(p).getroot().findall("m:externalCredentialParameters", ns):
        if param.findtext("m:parameterType", namespaces=ns) == "NamedPrincipal":
            principals.add(f"{name}-{param.findtext('m:parameterName', namespaces=ns)}")
problems = []
for p in sorted(glob.glob(f"{base}/permissionsets/*.permissionset-meta.xml")):
    root = ET.parse(p).getroot()
    for text, known, what in (
        ("m:classAccesses/m:apexClass", classes, "class"),
        ("m:fieldPermissions/m:field", fields, "field"),
        ("m:objectPermissions/m:object", objects, "object"),
        ("m:customMetadataTypeAccesses/m:name", objects, "custom metadata type"),
        ("m:externalCredentialPrincipalAccesses/m:externalCredentialPrincipal", principals, "principal"),
    ):
        problems += [f"{os.path.basename(p)}: unknown {what} {e.text}" for e in root.findall(text, ns) if e.text not in known]
print("\n".join(problems) or "every reference resolves")
sys.exit(1 if problems else 0)
PY

echo "--> Lightning Web Components: Jest (sfdx-lwc-jest)"
npx --no-install sfdx-lwc-jest

echo "--> the Salesforce CLI converts the project (sf project convert source)"
SF_DISABLE_TELEMETRY=true SF_AUTOUPDATE_DISABLE=true SF_USE_GENERIC_UNIX_KEYCHAIN=true HOME="$WORK/home" \
  node_modules/node/bin/node node_modules/@salesforce/cli/bin/run.js project convert source \
  --root-dir force-app --output-dir "$WORK/mdapi" --json > "$WORK/convert.json" 2> "$WORK/convert.err" || {
  cat "$WORK/convert.json" "$WORK/convert.err"
  exit 1
}
python3 - "$WORK/mdapi/package.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"m": "http://soap.sforce.com/2006/04/metadata"}
root = ET.parse(sys.argv[1]).getroot()
types = {t.find("m:name", ns).text: len(t.findall("m:members", ns)) for t in root.findall("m:types", ns)}
print("converted: " + ", ".join(f"{n} {k}" for k, n in sorted(types.items())))
wanted = {"ApexClass", "CustomObject", "CustomField", "CustomMetadata", "ExternalCredential", "NamedCredential",
          "LightningComponentBundle", "PermissionSet"}
missing = wanted - set(types)
sys.exit(f"not converted: {sorted(missing)}" if missing else 0)
PY
echo "--> the Salesforce kit passes its offline checks"
