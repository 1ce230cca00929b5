// Jest tests of the Case page component (sfdx-lwc-jest): the Apex methods are
// mocked with the server's answers from fixtures/caller_verifications.json.
import { createElement } from 'lwc';
import VouchsafeCallerChallenge, { POLL_MS } from 'c/vouchsafeCallerChallenge';
import start from '@salesforce/apex/VouchsafeCallerController.start';
import poll from '@salesforce/apex/VouchsafeCallerController.poll';
import checkCode from '@salesforce/apex/VouchsafeCallerController.checkCode';
import cancel from '@salesforce/apex/VouchsafeCallerController.cancel';
import transactions from '@salesforce/apex/VouchsafeCallerController.transactions';

const fixtures = require('../../../../../../fixtures/caller_verifications.json');
const answer = (name) => fixtures.exchanges.find((e) => e.name === name).answer.body;

jest.mock('@salesforce/apex/VouchsafeCallerController.start', () => ({ default: jest.fn() }), { virtual: true });
jest.mock('@salesforce/apex/VouchsafeCallerController.poll', () => ({ default: jest.fn() }), { virtual: true });
jest.mock('@salesforce/apex/VouchsafeCallerController.checkCode', () => ({ default: jest.fn() }), { virtual: true });
jest.mock('@salesforce/apex/VouchsafeCallerController.cancel', () => ({ default: jest.fn() }), { virtual: true });
jest.mock('@salesforce/apex/VouchsafeCallerController.transactions', () => ({ default: jest.fn() }), {
    virtual: true
});

const NOW = Date.parse('2025-11-30T05:20:00.000Z');

async function settle() {
    for (let i = 0; i < 5; i++) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.resolve();
    }
}

function mount() {
    const element = createElement('c-vouchsafe-caller-challenge', { is: VouchsafeCallerChallenge });
    element.recordId = '500xx000001Case1AAA';
    document.body.appendChild(element);
    return element;
}

const $ = (element, selector) => element.shadowRoot.querySelector(selector);

async function authenticate(element) {
    $(element, 'lightning-button.authenticate').click();
    await settle();
}

describe('c-vouchsafe-caller-challenge', () => {
    beforeEach(() => {
        jest.useFakeTimers();
        jest.setSystemTime(NOW);
        transactions.mockResolvedValue([]);
        start.mockResolvedValue(answer('start'));
    });

    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
        jest.useRealTimers();
    });

    it('starts a verification for the case and counts down the time allowed', async () => {
        const element = mount();
        await settle();
        expect($(element, '.no-transactions')).not.toBeNull();
        await authenticate(element);
        expect(start).toHaveBeenCalledWith({ caseId: '500xx000001Case1AAA' });
        expect($(element, '.status-label').textContent).toBe('Waiting for the caller');
        expect($(element, '.countdown').textContent).toContain('60 s left');
        expect($(element, '.destination').textContent).toBe('Sent by sms to +44********56');
        jest.advanceTimersByTime(15000);
        poll.mockResolvedValue(answer('poll'));
        await settle();
        expect($(element, '.countdown').textContent).toContain('45 s left');
    });

    it('follows the verification until the caller approves, then lists it', async () => {
        const element = mount();
        await authenticate(element);
        poll.mockResolvedValue(answer('poll'));
        jest.advanceTimersByTime(POLL_MS);
        await settle();
        expect(poll).toHaveBeenCalledWith({ verificationId: answer('start').id });
        expect($(element, '.status-label').textContent).toBe('Waiting for the caller');
        const verified = { ...answer('poll'), status: 'verified', completed_at: '2025-11-30T05:20:20.000Z' };
        poll.mockResolvedValue(verified);
        transactions.mockResolvedValue([
            { Id: 'a01', Name: 'VT-000001', Status__c: 'verified', Channel__c: 'sms', Destination__c: '+44********56' }
        ]);
        jest.advanceTimersByTime(POLL_MS);
        await settle();
        expect($(element, '.status-label').textContent).toBe('Verified');
        expect($(element, '.countdown')).toBeNull();
        expect($(element, '.transaction').textContent).toBe('VT-000001: verified by sms to +44********56');
        const calls = poll.mock.calls.length;
        jest.advanceTimersByTime(POLL_MS * 3);
        await settle();
        expect(poll.mock.calls.length).toBe(calls);
    });

    it('checks the code the caller reads out and says how many attempts are left', async () => {
        const element = mount();
        await authenticate(element);
        checkCode.mockResolvedValue(answer('check'));
        const input = $(element, 'lightning-input.code');
        input.value = '000000';
        input.dispatchEvent(new CustomEvent('change'));
        $(element, 'lightning-button.check').click();
        await settle();
        expect(checkCode).toHaveBeenCalledWith({ verificationId: answer('start').id, code: '000000' });
        expect($(element, '.error').textContent).toBe('That code is not right (4 attempts left).');
        expect($(element, '.status-label').textContent).toBe('Waiting for the caller');
    });

    it('cancels', async () => {
        const element = mount();
        await authenticate(element);
        cancel.mockResolvedValue(answer('cancel'));
        $(element, 'lightning-button.cancel').click();
        await settle();
        expect(cancel).toHaveBeenCalledWith({ verificationId: answer('start').id });
        expect($(element, '.status-label').textContent).toBe('Canceled');
        expect($(element, 'lightning-button.again')).not.toBeNull();
    });

    it("shows the server's refusal", async () => {
        start.mockRejectedValue({ body: { message: 'phone: is not a phone number' } });
        const element = mount();
        await authenticate(element);
        expect($(element, '.error').textContent).toBe('phone: is not a phone number');
        expect($(element, 'lightning-button.authenticate')).not.toBeNull();
    });
});
