// Jest for the Lightning Web Components, with Salesforce's preset
// (@salesforce/sfdx-lwc-jest): base components and Apex imports are stubbed.
const { jestConfig } = require('@salesforce/sfdx-lwc-jest/config');

module.exports = {
    ...jestConfig,
    modulePathIgnorePatterns: ['<rootDir>/.localdevserver']
};
