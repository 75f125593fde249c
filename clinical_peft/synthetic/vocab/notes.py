"""The texture of notes: radiology exams, filler, severity cues, narrative, note layout."""

from __future__ import annotations

# Hand-packed tables: the formatter would put every string on its own line.
# fmt: off

# Radiology exams: title, technique, normal findings, normal impression.
EXAMS: dict[str, tuple[str, str, list[str], str]] = {
    "CXR": (
        "CHEST (PA AND LAT)", "Chest PA and lateral",
        [
            "The lungs are clear without focal consolidation.",
            "No pleural effusion or pneumothorax is seen.",
            "The cardiac and mediastinal silhouettes are unremarkable.", "Heart size is normal.",
            "There is no pulmonary vascular congestion.", "Osseous structures are intact.",
            "Multilevel degenerative changes are seen in the thoracic spine.",
        ],
        "No acute cardiopulmonary process.",
    ),
    "CXRP": (
        "CHEST (PORTABLE AP)", "Portable AP chest radiograph",
        [
            "Lung volumes are low.", "There is no focal consolidation.",
            "No large pleural effusion.", "No pneumothorax.",
            "The cardiomediastinal silhouette is stable.",
            "A right internal jugular central line terminates in the mid SVC.",
        ],
        "No acute cardiopulmonary process.",
    ),
    "CTHEAD": (
        "CT HEAD W/O CONTRAST",
        "Contiguous axial images of the brain were obtained without contrast.",
        [
            "There is no evidence of hemorrhage, edema, mass effect, or large territorial infarction.",
            "The ventricles and sulci are normal in size and configuration for age.",
            "Periventricular white matter hypodensities likely reflect chronic small vessel ischemic disease.",
            "The basal cisterns appear patent and there is preservation of gray white matter differentiation.",
            "No osseous abnormalities are seen.",
            "The visualized paranasal sinuses, mastoid air cells, and middle ear cavities are clear.",
            "The orbits are unremarkable.",
        ],
        "No acute intracranial process.",
    ),
    "CTAP": (
        "CT ABD AND PELVIS WITH CONTRAST",
        "Multidetector CT of the abdomen and pelvis after IV contrast.",
        [
            "LOWER CHEST: Visualized lung fields are within normal limits.",
            "HEPATOBILIARY: The liver demonstrates homogeneous attenuation throughout. There is no evidence of focal lesions.",
            "PANCREAS: The pancreas has normal attenuation throughout, without evidence of focal lesions.",
            "SPLEEN: The spleen shows normal size and attenuation throughout.",
            "ADRENALS: The right and left adrenal glands are normal in size and shape.",
            "URINARY: The kidneys are of normal and symmetric size with normal nephrogram. There is no hydronephrosis.",
            "GASTROINTESTINAL: The stomach is unremarkable. Small bowel loops demonstrate normal caliber and wall thickness.",
            "PELVIS: The urinary bladder and distal ureters are unremarkable. There is no free fluid in the pelvis.",
            "LYMPH NODES: There is no retroperitoneal or mesenteric lymphadenopathy.",
            "VASCULAR: There is moderate calcium burden in the abdominal aorta and great abdominal arteries.",
            "BONES: There is no evidence of worrisome osseous lesions or acute fracture.",
            "SOFT TISSUES: The abdominal and pelvic wall is within normal limits.",
        ],
        "No acute process in the abdomen or pelvis.",
    ),
    "CTA": (
        "CTA CHEST", "Wide detector CT angiogram of the chest after IV contrast.",
        [
            "The pulmonary arteries are well opacified to the subsegmental level.",
            "The thoracic aorta is normal in caliber without evidence of dissection.",
            "The heart is normal in size. There is no pericardial effusion.",
            "There is no mediastinal, hilar or axillary lymphadenopathy.",
            "There is mild bibasilar atelectasis. No pleural effusion.",
            "Limited images of the upper abdomen are unremarkable.",
        ],
        "No evidence of pulmonary embolism or aortic abnormality.",
    ),
    "RENUS": (
        "RENAL U.S.",
        "Grey scale and color Doppler ultrasound images of the kidneys were obtained.",
        [
            "The right kidney measures 10.8 cm.", "The left kidney measures 11.2 cm.",
            "There is no hydronephrosis, stones, or masses bilaterally.",
            "Normal cortical echogenicity and corticomedullary differentiation are seen bilaterally.",
            "The bladder is moderately well distended and normal in appearance.",
        ],
        "Normal renal ultrasound.",
    ),
    "RUQUS": (
        "LIVER OR GALLBLADDER US (SINGLE ORGAN)",
        "Grey scale and color Doppler ultrasound images of the abdomen.",
        [
            "LIVER: The hepatic parenchyma appears within normal limits. The contour of the liver is smooth.",
            "The main portal vein is patent with hepatopetal flow.",
            "BILE DUCTS: There is no intrahepatic biliary dilation. The CHD measures 4 mm.",
            "GALLBLADDER: There is no evidence of stones or gallbladder wall thickening.",
            "PANCREAS: Imaged portion of the pancreas appears within normal limits.",
            "SPLEEN: Normal echogenicity, measuring 10.1 cm.",
        ],
        "Normal abdominal ultrasound.",
    ),
    "LENIS": (
        "UNILAT LOWER EXT VEINS",
        "Grey scale, color, and spectral Doppler evaluation of the veins.",
        [
            "There is normal compressibility, flow, and augmentation of the common femoral, femoral, and popliteal veins.",
            "Normal color flow and compressibility are demonstrated in the posterior tibial and peroneal veins.",
            "There is normal respiratory variation in the common femoral veins bilaterally.",
            "No evidence of medial popliteal fossa (Baker's) cyst.",
        ],
        "No evidence of deep venous thrombosis.",
    ),
    "MRHEAD": (
        "MR HEAD W/O CONTRAST",
        "Sagittal and axial T1, axial FLAIR, T2, diffusion and gradient echo images.",
        [
            "There is no evidence of hemorrhage, edema, masses, mass effect, midline shift or infarction.",
            "There are scattered foci of T2 and FLAIR hyperintensity in the periventricular white matter.",
            "The ventricles and sulci are normal in caliber and configuration.",
            "The major intracranial flow voids are preserved.",
            "The visualized paranasal sinuses and mastoid air cells are clear.",
        ],
        "No acute intracranial abnormality.",
    ),
}
EXAM_KEYS: list[str] = list(EXAMS)

# Filler that gives a note its texture without carrying a label.
ROS_NEGATIVES = [
    "headache", "vision changes", "rhinorrhea", "congestion", "sore throat", "cough",
    "shortness of breath", "chest pain", "abdominal pain", "nausea", "vomiting", "diarrhea",
    "constipation", "BRBPR", "melena", "hematochezia", "dysuria", "hematuria", "rash", "joint pain",
    "weight loss", "fevers", "chills",
]
SOCIAL = [
    "Lives with his wife in a single family home.", "Lives alone in an apartment.",
    "Retired machinist.", "Former smoker, quit 20 years ago.",
    "Drinks one glass of wine with dinner.", "Denies illicit drug use.",
    "Works as a school bus driver.", "Independent in all ADLs.", "Walks with a cane.",
    "Has two adult children who live nearby.",
]
FAMILY = [
    "Mother with hypertension and diabetes.", "Father had a myocardial infarction at age 70.",
    "Sister with breast cancer.", "Brother with COPD.", "No family history of colon cancer.",
    "Noncontributory.",
]
ALLERGIES = [
    "No Known Allergies / Adverse Drug Reactions", "Penicillins", "Sulfa (Sulfonamide Antibiotics)",
    "Codeine", "lisinopril / Iodine", "Patient recorded as having No Known Allergies to Drugs",
]
SERVICES = {
    "default": "MEDICINE", "NSTEMI": "CARDIOLOGY", "ischemic stroke": "NEUROLOGY",
    "small bowel obstruction": "SURGERY",
}
DISPOSITIONS = ["Home", "Home With Service", "Extended Care"]

# Severity on the page (mortality, pmv and LOS are all driven by a latent severity s ~ N(0, 1)):
# (phrase, threshold): shown with probability sigmoid(2 * (s - threshold)).
SEVERE_PHRASES: list[tuple[str, float]] = [
    ("hypotensive", 0.9), ("septic", 1.1), ("intubated in the field", 1.5),
    ("started on pressors", 1.4), ("altered mental status", 0.6), ("tachypneic", 0.4),
    ("unresponsive", 1.7), ("lactate 5.2", 1.2), ("admitted to the ICU", 0.8),
    ("code status DNR/DNI", 1.3), ("mottled extremities", 1.6), ("GCS 7", 1.8), ("anuric", 1.5),
    ("hypoxic on nonrebreather", 1.0),
]
MILD_PHRASES: list[tuple[str, float]] = [
    ("well appearing", 0.3), ("ambulatory", 0.2), ("alert and oriented x3", 0.0),
    ("in no acute distress", 0.2), ("elective admission", 1.0), ("tolerating diet", 0.5),
    ("full code", -0.2),
]
# Pmv: prolonged ventilation cues among ventilated patients.
PMV_PHRASES = [
    "ARDS", "bilateral infiltrates", "copious secretions", "failed spontaneous breathing trial",
    "high PEEP requirement", "neuromuscular weakness",
]
NEUTRAL_HPI = [
    "Of note, he was recently seen by his PCP.", "Family at bedside provides history.",
    "Review of systems otherwise negative.", "Records from an outside hospital were reviewed.",
    "He has had a stable weight.", "He lives with his daughter.", "Last colonoscopy was normal.",
    "He reports adherence to medications.", "Vaccinations are up to date.",
    "The patient was seen in clinic two weeks ago.", "No recent travel.", "No sick contacts.",
]
# Admission-note narrative that carries no label: {n} is a number of days, {cc} the complaint.
HPI_ONSET = [
    "He was in his usual state of health until {n} days prior to admission when he developed {cc}.",
    "He first noticed {cc} {n} days ago and it has progressively worsened.",
    "His family brought him in after {n} days of {cc}.",
    "He describes {n} days of {cc} that started gradually at home.",
]
HPI_STORY = [
    "He presented to an outside hospital where a CT scan was performed and he was transferred for further care.",
    "At home he tried over the counter medications without relief.",
    "He called his PCP who recommended evaluation in the emergency department.",
    "EMS was called and he was brought to the emergency department.",
    "In the ED he received IV fluids and a dose of acetaminophen.",
    "He has had decreased appetite and has been eating less than usual.",
    "He denies any recent medication changes.", "He has not had similar episodes in the past.",
    "He uses a walker at baseline and has had no recent falls.",
    "His daughter notes that he has been more tired over the past week.",
    "He was given a dose of ondansetron for nausea with some relief.",
    "A urinalysis and chest radiograph were obtained in the ED.",
]
# Hospital course lines that any admission may carry.
GENERIC_COURSE = [
    "He was seen by physical therapy who recommended discharge with home services.",
    "Nutrition was consulted and recommended a cardiac healthy diet.",
    "He was maintained on subcutaneous heparin for DVT prophylaxis.",
    "Electrolytes were repleted as needed.", "He had no events on telemetry.",
    "Pain was well controlled with acetaminophen and low dose oxycodone.",
    "Case management helped arrange services at home.",
    "His home medications were reconciled with his pharmacy.",
    "He remained hemodynamically stable throughout the admission.",
    "He was encouraged to ambulate with assistance and used incentive spirometry.",
    "Social work met with him and his family to discuss support at home.",
    "Bowel regimen with senna and docusate was given while on opioids.",
    "Blood glucose was monitored with fingersticks before meals and at bedtime.",
    "He was evaluated by occupational therapy and was safe for discharge.",
]
EKG_LINES = [
    "EKG: Sinus rhythm at 88 bpm, normal axis, normal intervals, no acute ST-T changes.",
    "EKG: Sinus tachycardia at 104 bpm, left axis deviation, nonspecific T wave flattening.",
    "EKG: Atrial fibrillation with ventricular rate 96, low voltage, no ST elevations.",
    "TTE: The left atrium is mildly dilated. Left ventricular wall thickness and cavity size are normal. There is no pericardial effusion. LVEF 55 percent.",
]
# Incidental radiology findings, so reports vary the way real ones do.
INCIDENTALS = [
    ("A 4 mm nodule in the right upper lobe is unchanged.", "Stable 4 mm right upper lobe nodule."),
    (
        "There is a simple cyst in the upper pole of the left kidney measuring 1.8 cm.",
        "Simple left renal cyst, no follow up needed.",
    ),
    (
        "Mild degenerative changes are seen in the imaged spine.",
        "Degenerative changes of the spine.",
    ),
    (
        "Atherosclerotic calcifications are present in the aorta and coronary arteries.",
        "Coronary artery and aortic calcifications.",
    ),
    ("A small hiatal hernia is noted.", "Small hiatal hernia."),
    ("Cholelithiasis without evidence of cholecystitis.", "Cholelithiasis."),
]
ADMISSION_COMPLAINTS = [
    "shortness of breath", "chest pain", "fever", "fall", "abdominal pain", "weakness",
    "altered mental status", "transfer from outside hospital",
]
HOME_MEDS = [
    "aspirin 81 mg daily", "atorvastatin 40 mg daily", "metoprolol 25 mg twice daily",
    "lisinopril 10 mg daily", "omeprazole 20 mg daily", "vitamin D 1000 units daily",
    "acetaminophen as needed", "docusate 100 mg twice daily", "amlodipine 5 mg daily",
    "tamsulosin 0.4 mg nightly", "multivitamin daily", "senna as needed",
]

# Radiology requests outside an admission: (indication, question).
OUTPATIENT_INDICATIONS = [
    ("fall", "eval for fracture"), ("chronic cough", "eval for infiltrate"),
    ("headache", "eval for bleed"), ("abdominal pain", "eval for acute process"),
    ("follow up of lung nodule", "interval change"), ("preoperative evaluation", "eval"),
    ("leg swelling", "eval for DVT"), ("elevated liver enzymes", "eval for biliary dilation"),
]
FOLLOWUP_DEPTS = [
    "PRIMARY CARE", "CARDIOLOGY", "NEUROLOGY", "GASTROENTEROLOGY", "NEPHROLOGY", "PULMONARY",
    "HEPATOLOGY", "GENERAL SURGERY",
]
SUMMARY_DISPOSITIONS = [
    "home", "home with services", "a skilled nursing facility", "a rehabilitation facility",
]

# Physical exam lines, and where an abnormal finding goes (by keyword).
NORMAL_EXAM = {
    "GENERAL": "Alert, oriented, no acute distress", "HEENT": "Sclera anicteric, MMM, oropharynx clear",
    "NECK": "Supple, JVP not elevated, no LAD",
    "LUNGS": "Clear to auscultation bilaterally, no wheezes, rales, rhonchi",
    "CV": "Regular rate and rhythm, normal S1 + S2, no murmurs, rubs, gallops",
    "ABDOMEN": "Soft, non-tender, non-distended, bowel sounds present, no organomegaly",
    "EXTREMITIES": "Warm, well perfused, 2+ pulses, no clubbing, cyanosis or edema",
    "NEURO": "CNII-XII intact, 5/5 strength upper/lower extremities, grossly normal sensation",
    "SKIN": "No rashes or lesions",
}
EXAM_SYSTEMS = [
    ("NECK", ["JVP"]),
    ("LUNGS", ["crackles", "wheez", "egophony", "expiratory", "respirations", "accessory", "tachypneic"]),
    ("CV", ["murmur", "gallop", "irregular", "tachycardic", "S4"]),
    ("ABDOMEN", ["abdom", "ascites", "bowel", "guarding", "epigastric", "melena", "costovertebral",
                 "suprapubic", "angiomata"]),
    ("EXTREMITIES", ["edema", "erythema", "shin", "calf", "tinea", "leg"]),
    ("NEURO", ["drift", "droop", "strength", "dysarthria", "asterixis"]),
    ("HEENT", ["conjunctivae", "icterus", "mucous", "odor"]),
]

# The MIMIC-IV discharge summary layout: blocks joined by a line holding one space, as in the
# real files. Fields in braces are filled by `synthetic.text.discharge_text`.
DISCHARGE_BLOCKS = [
    "Name:  [**Known lastname {name}**]                 Unit No:   [**Numeric Identifier {unit}**]",
    "Admission Date:  {admit}              Discharge Date:   {disch}",
    "Date of Birth:  {dob}             Sex:   {sex}",
    "Service: {service}",
    "Allergies: \n{allergy}",
    "Attending: [**First Name3 (LF) {attending}**].",
    "Chief Complaint:\n{cc}",
    "Major Surgical or Invasive Procedure:\n{procedure}\n",
    "History of Present Illness:\n{hpi}",
    "Past Medical History:\n{pmh}",
    "Social History:\n{social}\nFamily History:\n{family}",
    "Physical Exam:\nADMISSION PHYSICAL EXAM:\n{exam_in}\n\nDISCHARGE PHYSICAL EXAM:\n{exam_out}",
    "Pertinent Results:\n{results}",
    "Brief Hospital Course:\n{course}",
    "Medications on Admission:\nThe Preadmission Medication list is accurate and complete.\n{meds_in}",
    "Discharge Medications:\n{meds_out}",
    "Discharge Disposition:\n{dispo}",
    "Discharge Diagnosis:\nPRIMARY DIAGNOSIS:\n{dx}\n\nSECONDARY DIAGNOSES:\n{dx2}",
    "Discharge Condition:\nMental Status: Clear and coherent.\nLevel of Consciousness: Alert and "
    "interactive.\nActivity Status: Ambulatory - Independent.",
    "Discharge Instructions:\nDear {who},\n\nIt was a pleasure taking care of you at [**Hospital1 18**]."
    "\n\nWHY WERE YOU ADMITTED TO THE HOSPITAL?\n- You were admitted because of {cc_lower}.\n\n"
    "WHAT HAPPENED WHILE YOU WERE IN THE HOSPITAL?\n- You were found to have {short}.\n- You were "
    "treated with {treatment}.\n- Your symptoms improved.\n\nWHAT SHOULD YOU DO WHEN YOU LEAVE THE "
    "HOSPITAL?\n- Please take all of your medications as prescribed.\n- Please attend your follow up "
    "appointments listed below.\n- Please call your doctor if your {cc_lower} comes back or gets "
    "worse.\n\nWe wish you the best!\nYour [**Hospital1 18**] Care Team",
    "Followup Instructions:\n{followups}",
]
FOLLOWUP_BLOCK = (
    "Department: {dept}\nWhen: {weekday} {date} at {hour}:{minute} AM\nWith: [**First Name8 "
    "(NamePattern2) {n1}**] [**Last Name (NamePattern1) {n2}**], MD [**Telephone/Fax (1) {n3}**]\n"
    "Building: [**Hospital6 29**] [**Location (un) {n4}**]\n"
)

# fmt: on
