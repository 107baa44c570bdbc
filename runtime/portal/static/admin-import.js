// The console's CSV import: a chosen file is read into the text field the form posts. No inline script: the CSP forbids it.
(function () {
  'use strict';
  document.addEventListener('change', function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== 'file' || !input.dataset.fills) return;
    var target = document.getElementById(input.dataset.fills);
    var file = input.files && input.files[0];
    if (!target || !file) return;
    var reader = new FileReader();
    reader.onload = function () {
      target.value = String(reader.result || '');
      target.dispatchEvent(new Event('input'));
    };
    reader.readAsText(file, 'utf-8');
  });
})();
