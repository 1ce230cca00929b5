// The Case record page's caller verification: Authenticate sends the caller
// a link and a code (the server picks the channel from the case's contact),
// the status is polled until it ends while a countdown shows the time left,
// the agent can check the code the caller reads out or cancel, and the case's
// transactions are listed. The code itself never reaches the browser.
import { LightningElement, api } from 'lwc';
import start from '@salesforce/apex/VouchsafeCallerController.start';
import poll from '@salesforce/apex/VouchsafeCallerController.poll';
import checkCode from '@salesforce/apex/VouchsafeCallerController.checkCode';
import cancel from '@salesforce/apex/VouchsafeCallerController.cancel';
import transactions from '@salesforce/apex/VouchsafeCallerController.transactions';

/** How often the status is asked for while pending (ms). */
export const POLL_MS = 2000;

const LABELS = {
    pending: 'Waiting for the caller',
    verified: 'Verified',
    denied: 'Denied: the caller says they are not on a call',
    failed: 'Failed: too many wrong codes',
    expired: 'Expired: the caller did not answer in time',
    canceled: 'Canceled'
};

function messageOf(error) {
    return (error && error.body && error.body.message) || (error && error.message) || 'Something went wrong.';
}

export default class VouchsafeCallerChallenge extends LightningElement {
    @api recordId;
    verification;
    transactions = [];
    code = '';
    error;
    busy = false;
    secondsLeft = 0;
    pollTimer;
    clockTimer;

    connectedCallback() {
        this.loadTransactions();
    }

    disconnectedCallback() {
        this.stopTimers();
    }

    get isIdle() {
        return !this.verification;
    }

    get isPending() {
        return this.verification && this.verification.status === 'pending';
    }

    get statusLabel() {
        return LABELS[this.verification.status] || this.verification.status;
    }

    get hasTransactions() {
        return this.transactions.length > 0;
    }

    async loadTransactions() {
        try {
            this.transactions = (await transactions({ caseId: this.recordId })) || [];
        } catch (error) {
            this.error = messageOf(error);
        }
    }

    async handleAuthenticate() {
        await this.act(async () => {
            this.show(await start({ caseId: this.recordId }));
            this.code = '';
            await this.loadTransactions();
        });
    }

    handleCodeChange(event) {
        this.code = event.target.value;
    }

    async handleCheck() {
        await this.act(async () => {
            const result = await checkCode({ verificationId: this.verification.id, code: this.code });
            this.show({ ...this.verification, status: result.status, attempts_remaining: result.attempts_remaining });
            if (!result.valid && result.status === 'pending') {
                this.error = `That code is not right (${result.attempts_remaining} attempts left).`;
            }
        });
    }

    async handleCancel() {
        await this.act(async () => this.show(await cancel({ verificationId: this.verification.id })));
    }

    /** Runs one action with the buttons disabled and its error shown. */
    async act(action) {
        this.busy = true;
        this.error = undefined;
        try {
            await action();
        } catch (error) {
            this.error = messageOf(error);
        } finally {
            this.busy = false;
        }
    }

    /** Shows a verification and follows it while it is pending. */
    show(verification) {
        this.verification = verification;
        this.stopTimers();
        if (verification.status !== 'pending') {
            this.loadTransactions();
            return;
        }
        const deadline = Date.parse(verification.expires_at);
        const tick = () => {
            this.secondsLeft = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        };
        tick();
        // eslint-disable-next-line @lwc/lwc/no-async-operation
        this.clockTimer = setInterval(tick, 1000);
        // eslint-disable-next-line @lwc/lwc/no-async-operation
        this.pollTimer = setInterval(() => this.refresh(), POLL_MS);
    }

    async refresh() {
        try {
            const latest = await poll({ verificationId: this.verification.id });
            if (latest.status !== 'pending') {
                this.show(latest);
            }
        } catch (error) {
            this.error = messageOf(error);
        }
    }

    stopTimers() {
        clearInterval(this.pollTimer);
        clearInterval(this.clockTimer);
        this.pollTimer = undefined;
        this.clockTimer = undefined;
    }
}
